"""In a real kernel with a real broker: a tampered image set and a set whose registered key
is not the one it was sealed with are refused with their reasons; a scan of a large set
stays within a row group's worth of memory."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from imaging_helpers import add_image_set

from workbench.demo.imaging import ct_files
from workbench.sealing import images as image_format


@pytest.fixture(autouse=True)
def _forget(imaging_kernel):
    outcome = imaging_kernel.execute("import workbench as wb\nwb.forget()")
    assert outcome.error is None, outcome.evalue


def test_a_tampered_image_set_is_refused(imaging_kernel, imaging_site):
    path = add_image_set(imaging_site, "ct-tampered", ct_files(), shape=(128, 128))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the pixel pages
    path.write_bytes(bytes(data))
    outcome = imaging_kernel.execute("wb.open_images('ct-tampered', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert outcome.evalue == (f"{path}: table is damaged or was tampered with (authentication "
                              "failed)")


def test_a_set_opened_with_another_key_is_refused(imaging_kernel, imaging_site):
    other = {"ct-rekeyed/table-key/clinical": os.urandom(32)}
    path = add_image_set(imaging_site, "ct-rekeyed", ct_files(), shape=(128, 128),
                         registered=other)
    outcome = imaging_kernel.execute("wb.scan_images('ct-rekeyed', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert outcome.evalue == (f"{path}: key 'ct-rekeyed/table-key/clinical' does not open "
                              "this data (wrong key)")


IMAGES, SIZE = 2048, 128

# VmHWM: the kernel's peak resident memory (as benchmarks/bench_inference.py measures it).
_SCAN = """
import json
def peak_mb():
    with open("/proc/self/status") as status:
        return int(next(x for x in status if x.startswith("VmHWM:")).split()[1]) / 1024
before, rows, total = None, 0, 0.0
for batch in wb.scan_images('noise-big', batch_rows=64, columns=['image'], approve=True):
    rows += batch.rows
    total += float(batch.arrays['pixels'][:, 0, 0, 0].sum())
    if before is None:  # the key release and the first row group are behind us
        before = peak_mb()
print(json.dumps({"rows": rows, "total": total, "grew_mb": peak_mb() - before}))
"""


def test_a_large_scan_in_the_kernel_holds_row_groups_not_the_set(imaging_kernel,
                                                                   imaging_site, tmp_path,
                                                                   monkeypatch):
    volume = np.random.default_rng(5).normal(0, 300, (IMAGES, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "noise.npy", volume)
    # 4 MB row groups (64 slices), so that the set is 32 of them.
    monkeypatch.setattr(image_format, "ROW_GROUP_BYTES", 4 * 2**20)
    add_image_set(imaging_site, "noise-big", [tmp_path / "noise.npy"])
    whole_mb = volume.nbytes / 2**20  # 128 MB
    outcome = imaging_kernel.execute(_SCAN)
    assert outcome.error is None, outcome.evalue
    got = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert got["rows"] == IMAGES
    assert got["total"] == pytest.approx(float(volume[:, 0, 0].sum()), rel=1e-4)
    # Reading the other 31 row groups reuses the first one's memory: the set never
    # accumulates (all of it would be 124 MB more). Measured: 8 to 22 MB, as pyarrow's
    # reader threads and their allocator arenas come and go.
    assert got["grew_mb"] < whole_mb / 4, (got, whole_mb)

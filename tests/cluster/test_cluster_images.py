"""Image sets on the cluster: ``wb.scan_images(..., engine="dask")`` scored by the tissue model
on attested workers equals the kernel's own scoring, partition by partition of row groups."""

from __future__ import annotations

import numpy as np
import pytest
from cluster_site import MANY_SLICES, SLICES_PER_GROUP

from workbench.demo.imaging import MODEL
from workbench.errors import WorkbenchError


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    return a == b or (a is None and b is None)


def test_image_scores_on_workers_equal_the_kernels(kernel_side, imaging):
    import workbench as wb

    cluster = wb.cluster(n_workers=2)
    model = wb.load_model(MODEL)
    local = model.predict(wb.scan_images(MANY_SLICES), progress=False)
    scan = wb.scan_images(MANY_SLICES, engine="dask", partition_rows=2 * SLICES_PER_GROUP)
    assert "ClusterImageScan" in repr(scan)
    remote = model.predict(scan, progress=False)
    assert len(scan.partitions) == scan.done == -(-imaging // (2 * SLICES_PER_GROUP))
    assert list(remote.columns) == list(local.columns)
    assert len(remote) == len(local) == imaging
    for column in local.columns:
        left, right = local[column].to_numpy(), remote[column].to_numpy()
        if left.dtype == object:
            assert all(_same(a, b) for a, b in zip(left, right, strict=True)), column
        else:
            assert np.array_equal(left, right, equal_nan=True), column
    # Aggregates over the decrypted pixels, computed where they are decrypted.
    sizes = scan.map(lambda batch: (batch.rows, batch.arrays["pixels"].shape[1:]),
                     progress=False)
    assert sum(rows for rows, _ in sizes) == imaging
    assert {shape for _, shape in sizes} == {(1, 256, 256)}
    cluster.close()


@pytest.mark.parametrize("name, engine, reason", [
    ("cohort", "dask", "no images named 'cohort'"),
    (MANY_SLICES, "spark", "unknown scan engine 'spark'"),
    (MANY_SLICES, "dask", "engine='dask' needs a cluster"),
])
def test_image_scans_on_the_cluster_are_refused_with_the_reason(kernel_side, imaging, name,
                                                                 engine, reason):
    import workbench as wb

    with pytest.raises(WorkbenchError, match=reason):
        wb.scan_images(name, engine=engine)

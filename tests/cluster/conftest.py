"""One hospital (a real broker on 127.0.0.1, the demo cohort and model) and a larger sealed
cohort in many row groups, for clusters of real worker processes attesting to that broker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))

from cluster_data import seal_cohort
from cluster_site import (
    MANY_SLICES,
    SLICE_COPIES,
    SLICES_PER_GROUP,
    WIDE,
    WIDE_GROUP,
    WIDE_ROWS,
)

from workbench.demo.environment import Hospital, hospital


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        seal_cohort(running, WIDE, WIDE_ROWS, group_rows=WIDE_GROUP)
        yield running


@pytest.fixture
def kernel_side(site: Hospital, monkeypatch: pytest.MonkeyPatch):
    """This test process as the kernel (its state, its broker session), over the site."""
    from workbench.kernel import state

    site.repin()
    monkeypatch.setenv("WORKBENCH_HOME", str(site.home))
    monkeypatch.setenv("WORKBENCH_AUTO_APPROVE", "1")
    for name in ("WORKBENCH_KBS_URL", "WORKBENCH_DATA_DIR", "WORKBENCH_KERNEL_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    yield state.start_state()
    from workbench.scaleout import api

    running = api._current.pop("cluster", None)
    if running is not None:
        running.close()
    monkeypatch.setattr(state, "_state", None)


@pytest.fixture(scope="session")
def imaging(site: Hospital, tmp_path_factory: pytest.TempPathFactory) -> int:
    """The CT slices and tissue model, and a set of copies of the slices in row groups of
    ``SLICES_PER_GROUP`` (so it spans several partitions). Returns that set's size."""
    import shutil

    from workbench.demo.environment import KEYRING_NAME
    from workbench.demo.imaging import SHAPE, ct_files, publish_imaging
    from workbench.publish.broker import Release
    from workbench.publish.core import Target, publish
    from workbench.publish.images import ImageAsset
    from workbench.publish.kinds import ASSET_KINDS
    from workbench.sealing import images

    publish_imaging(site)
    folder = tmp_path_factory.mktemp("ct-copies")
    for copy in range(SLICE_COPIES):
        for source in ct_files():
            shutil.copy(source, folder / f"{copy}-{source.name}")
    asset = ImageAsset.read(sorted(folder.iterdir()), MANY_SLICES, shape=SHAPE)
    saved = images.ROW_GROUP_BYTES
    images.ROW_GROUP_BYTES = SLICES_PER_GROUP * SHAPE[0] * SHAPE[1] * images.PIXEL_DTYPE.itemsize
    try:
        with site.admin() as admin:
            publish(ASSET_KINDS["images"], asset,
                    Target(site.data_dir, site.workdir / KEYRING_NAME, admin,
                           Release(site.policy, False, None), "copies of the CT slices"))
    finally:
        images.ROW_GROUP_BYTES = saved
    return asset.plan.rows

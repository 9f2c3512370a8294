"""Fixtures: a hospital (a real broker on 127.0.0.1) that also published the CT slices and
the tissue model, and a Confidential Python kernel started against it (jupyter_client)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.demo.environment import Hospital, hospital
from workbench.demo.imaging import publish_imaging

# RunningKernel, the jupyter_client driver the kernel tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))


@pytest.fixture(scope="module")
def imaging_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("imaging-hospital")) as running:
        publish_imaging(running)
        yield running


@pytest.fixture(scope="module")
def imaging_kernel(imaging_site: Hospital, tmp_path_factory: pytest.TempPathFactory):
    from kernel_helpers import RunningKernel

    imaging_site.repin()  # the installed code may have changed since the policy was made
    kernel = RunningKernel(imaging_site.kernel_env(),
                           tmp_path_factory.mktemp("imaging-kernel") / "kernel.log")
    yield kernel
    kernel.shutdown()


def add_image_set(site: Hospital, name: str, sources: list[Path], *,
                  shape: tuple[int, int] | None = None,
                  registered: dict[str, bytes] | None = None) -> Path:
    """Seal ``sources`` as image set ``name``, register its keys (or ``registered``, to
    give the broker other key material), and list it in the catalog."""
    import json

    from workbench.kernel.catalog import CATALOG_NAME
    from workbench.sealing.images import seal_images
    from workbench.sealing.keyring import Keyring
    from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key

    keyring = Keyring.open(site.workdir / "hospital.keyring")
    out = site.data_dir / f"{name}.sealed.parquet"
    seal_images(sources, out, keyring=keyring, dataset=name, shape=shape)
    with site.admin() as admin:
        for role in (CLINICAL_ROLE, PHI_ROLE):
            resource = table_key(name, role)
            key = (registered or {}).get(resource) or keyring.get_key(resource)
            admin.add_resource(resource, key, site.policy, require_approval=False,
                               approval_timeout_s=None)
    catalog = site.data_dir / CATALOG_NAME
    document = json.loads(catalog.read_text())
    document["images"][name] = {"path": out.name, "description": f"test set {name}"}
    catalog.write_text(json.dumps(document, indent=2))
    return out

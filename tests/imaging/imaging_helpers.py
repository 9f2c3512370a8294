"""Helpers of the imaging tests that run a real broker and kernel."""

from __future__ import annotations

from pathlib import Path

from workbench.demo.environment import Hospital


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

"""Large sealed cohorts for the cluster's tests and benchmark, written row group by row group.

Rows are the 30 real clinical features of the demo cohort resampled with a little noise, plus
one identifier column (``mrn``, sealed under the PHI key): a file of any size with the demo
model's features, written without holding more than one row group in memory, sealed, its keys
registered with the site's broker under the site's policy, listed in the catalog.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.demo.assets import NOISE_FRACTION, clinical_frame
from workbench.demo.environment import KEYRING_NAME
from workbench.kernel.catalog import CATALOG_NAME
from workbench.sealing import kms
from workbench.sealing.keyring import Keyring
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
from workbench.sealing.table import encryption_configuration

PHI = "mrn"


def seal_cohort(site: Any, name: str, rows: int, *, group_rows: int = 100_000,
                seed: int = 3) -> Path:
    features, _ = clinical_frame()
    base = features.to_numpy()
    spread = features.std().to_numpy() * NOISE_FRACTION
    columns = [*features.columns, PHI]
    keyring = Keyring.open(site.workdir / KEYRING_NAME)
    for role in (CLINICAL_ROLE, PHI_ROLE):
        keyring.ensure_aes256(table_key(name, role))
    keyring.save()
    config = encryption_configuration(name, columns, [PHI])
    properties = kms.crypto_factory(keyring).file_encryption_properties(
        kms.connection_config(), config)
    schema = pa.schema([*(pa.field(c, pa.float64()) for c in features.columns),
                        pa.field(PHI, pa.int64())])
    path = site.data_dir / f"{name}.sealed.parquet"
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, schema, encryption_properties=properties) as writer:
        for start in range(0, rows, group_rows):
            count = min(group_rows, rows - start)
            chosen = base[rng.integers(0, len(base), count)]
            values = np.clip(chosen + rng.normal(0.0, 1.0, chosen.shape) * spread, 0.0, None)
            arrays = [pa.array(values[:, j]) for j in range(values.shape[1])]
            arrays.append(pa.array(np.arange(start, start + count, dtype=np.int64)))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema),
                               row_group_size=group_rows)
    register_table(site, name, path, keyring, f"{rows} resampled rows")
    return path


def register_table(site: Any, name: str, path: Path, keyring: Keyring, description: str) -> None:
    """Register a sealed table's two keys with the site's broker and list it in the catalog."""
    with site.admin() as admin:
        for role in (CLINICAL_ROLE, PHI_ROLE):
            resource = table_key(name, role)
            admin.add_resource(resource, keyring.get_key(resource), site.policy,
                               require_approval=False, approval_timeout_s=None)
    catalog = site.data_dir / CATALOG_NAME
    document = json.loads(catalog.read_text())
    document["datasets"][name] = {"path": path.name, "description": description}
    catalog.write_text(json.dumps(document, indent=2))

"""Scanning a sealed dataset holds one row group at a time, whatever the file's size."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.demo.assets import PHI_COLUMNS, build_cohort
from workbench.errors import WorkbenchError
from workbench.kernel.api import DatasetScan
from workbench.kernel.catalog import Entry
from workbench.sealing import kms
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
from workbench.sealing.table import encryption_configuration

ROWS, GROUP = 200_000, 5_000


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    base = tmp_path_factory.mktemp("scan")
    ring = Keyring.create(base / "owner.keyring")
    for role in (CLINICAL_ROLE, PHI_ROLE):
        ring.ensure_aes256(table_key("big", role))
    table = pa.Table.from_pandas(build_cohort(ROWS, seed=2), preserve_index=False)
    config = encryption_configuration("big", table.column_names, PHI_COLUMNS)
    properties = kms.crypto_factory(ring).file_encryption_properties(kms.connection_config(),
                                                                     config)
    path = base / "big.sealed.parquet"
    pq.write_table(table, path, encryption_properties=properties, row_group_size=GROUP)
    features = [c for c in table.column_names if c not in PHI_COLUMNS][:-1]
    return Entry("dataset", "big", path, ""), ring, features


def _peak_allocated(batches) -> tuple[int, int]:
    start, peak, rows = pa.total_allocated_bytes(), 0, 0
    for batch in batches:
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - start)
    return rows, peak


def test_scan_memory_follows_the_row_group_not_the_file(sealed):
    entry, ring, features = sealed
    whole = ROWS * len(features) * 8
    scan = DatasetScan(entry, ring, features, batch_rows=5_000)
    assert scan.num_rows == ROWS and scan.schema.names == features
    rows, peak = _peak_allocated(scan)
    assert rows == ROWS
    assert peak < whole / 6, (peak, whole)
    # The measure tells the difference: pyarrow's default pre-buffering holds it all.
    eager = pq.ParquetFile(entry.path, decryption_properties=kms.decryption_properties(ring))
    rows, eager_peak = _peak_allocated(eager.iter_batches(batch_size=5_000, columns=features))
    assert rows == ROWS and eager_peak > whole / 2, (eager_peak, whole)


def test_scan_without_the_clinical_key_is_refused_up_front(sealed):
    entry, ring, features = sealed
    only_phi = MemoryKeySource({table_key("big", PHI_ROLE): ring.get_key(
        table_key("big", PHI_ROLE))})
    with pytest.raises(WorkbenchError, match="key 'big/table-key/clinical' is not available"):
        DatasetScan(entry, only_phi, features, batch_rows=5_000)

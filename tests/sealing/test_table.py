"""Sealed tables: round trip, key separation, and every refusal with its reason."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import InputError, WorkbenchError
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.table import open_table, scan_table, seal_table, sealed_columns

CLINICAL = "cohort/table-key/clinical"
PHI = "cohort/table-key/phi"


def test_round_trip_restores_every_value(sealed_cohort: Path, keyring: Keyring, demo_assets):
    original = pd.read_parquet(demo_assets.cohort)
    opened = open_table(sealed_cohort, keyring)
    pd.testing.assert_frame_equal(opened, original)


def test_sealed_bytes_do_not_contain_identifiers(sealed_cohort: Path, demo_assets):
    original = pd.read_parquet(demo_assets.cohort)
    raw = sealed_cohort.read_bytes()
    assert raw[:4] == b"PARE" and raw[-4:] == b"PARE"
    for value in original["mrn"].head(50):
        assert value.encode() not in raw
    assert b"mean_radius" not in raw, "encrypted footer must hide the schema"


def test_clinical_key_alone_reads_features_not_identifiers(sealed_cohort: Path, keyring: Keyring):
    clinical_only = MemoryKeySource({CLINICAL: keyring.get_key(CLINICAL)})
    features = open_table(sealed_cohort, clinical_only, columns=["mean_radius", "diagnosis"])
    assert len(features) == 569
    assert features["mean_radius"].between(5, 40).all()
    with pytest.raises(WorkbenchError, match=r"key 'cohort/table-key/phi' is not available"):
        open_table(sealed_cohort, clinical_only, columns=["name"])
    assert "name" in sealed_columns(sealed_cohort, clinical_only)


def test_phi_key_alone_cannot_open_the_table(sealed_cohort: Path, keyring: Keyring):
    phi_only = MemoryKeySource({PHI: keyring.get_key(PHI)})
    with pytest.raises(WorkbenchError) as caught:
        open_table(sealed_cohort, phi_only, columns=["name"])
    assert str(caught.value) == (
        f"{sealed_cohort}: key '{CLINICAL}' is not available: not held by this key source"
    )


def test_wrong_key_is_named(sealed_cohort: Path, tmp_path: Path, demo_assets):
    other = Keyring.create(tmp_path / "other.keyring")
    seal_table(demo_assets.cohort, tmp_path / "x.parquet", protect=["mrn"], keyring=other,
               dataset="cohort")
    with pytest.raises(WorkbenchError) as caught:
        open_table(sealed_cohort, other)
    assert str(caught.value) == (
        f"{sealed_cohort}: key '{CLINICAL}' does not open this data (wrong key)"
    )


def test_scan_yields_bounded_batches(sealed_cohort: Path, keyring: Keyring):
    batches = list(scan_table(sealed_cohort, keyring, batch_rows=100, columns=["mean_area"]))
    assert [b.num_rows for b in batches] == [100] * 5 + [69]
    assert batches[0].schema.names == ["mean_area"]


def test_unknown_protect_column_is_named(tmp_path: Path, keyring: Keyring, demo_assets):
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError, match=r"column\(s\) to protect not in the table: ssn "):
        seal_table(demo_assets.cohort, out, protect=["mrn", "ssn"], keyring=keyring,
                   dataset="cohort")
    assert not out.exists()
    assert list(tmp_path.glob("*.partial")) == []
    assert Keyring.open(keyring.path).entries() == [], "a failed seal must not add keys"


def test_csv_input_is_sealed(tmp_path: Path, keyring: Keyring):
    csv = tmp_path / "small.csv"
    csv.write_text("mrn,age,weight\nMRN1,40,70.5\nMRN2,51,80.25\n")
    out = seal_table(csv, tmp_path / "small.parquet", protect=["mrn"], keyring=keyring,
                     dataset="small")
    frame = open_table(out, keyring)
    assert frame.to_dict("list") == {"mrn": ["MRN1", "MRN2"], "age": [40, 51],
                                     "weight": [70.5, 80.25]}


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "is an unrecognised file, not a Parquet or CSV"),
        (b"PAR1" + b"\x00" * 64, "is a truncated Parquet file (its footer is missing)"),
    ],
)
def test_non_table_input_is_refused(tmp_path: Path, keyring: Keyring, content: bytes, cause: str):
    source = tmp_path / "input.bin"
    source.write_bytes(content)
    with pytest.raises(InputError) as caught:
        seal_table(source, tmp_path / "out.parquet", protect=["a"], keyring=keyring, dataset="x")
    assert str(caught.value).startswith(f"{source}: ")
    assert cause.split(",")[0] in str(caught.value)
    assert not (tmp_path / "out.parquet").exists()


def test_already_sealed_input_is_refused(sealed_cohort: Path, tmp_path: Path, keyring: Keyring):
    with pytest.raises(InputError, match="is already a sealed table"):
        seal_table(sealed_cohort, tmp_path / "again.parquet", protect=["mrn"], keyring=keyring,
                   dataset="cohort")


def test_truncated_table_is_refused(sealed_cohort: Path, keyring: Keyring, tmp_path: Path):
    data = sealed_cohort.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 6):
        truncated = tmp_path / f"cut-{cut}.parquet"
        truncated.write_bytes(data[:cut])
        with pytest.raises(WorkbenchError) as caught:
            open_table(truncated, keyring)
        assert str(caught.value).startswith(f"{truncated}: ")
        assert "truncated" in str(caught.value)


def _tamper_positions(data: bytes) -> list[int]:
    # Every byte of the plaintext footer-key metadata and of the file's last 2 KiB, and a
    # stride through the encrypted column chunks and footer.
    footer_start = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]
    everywhere = range(0, len(data), 37)
    metadata = range(footer_start, footer_start + 1024)
    tail = range(len(data) - 2048, len(data))
    return sorted(set(everywhere) | set(metadata) | set(tail))


def test_any_tampered_byte_is_refused(sealed_cohort: Path, keyring: Keyring, tmp_path: Path):
    data = sealed_cohort.read_bytes()
    tampered = tmp_path / "tampered.parquet"
    accepted = []
    for position in _tamper_positions(data):
        changed = bytearray(data)
        changed[position] ^= 0x01
        tampered.write_bytes(changed)
        try:
            open_table(tampered, keyring)
        except WorkbenchError as err:
            assert str(err).startswith(f"{tampered}: ")
        else:
            accepted.append(position)
    assert accepted == []


_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _footer_key_material(data: bytes) -> tuple[int, int, int]:
    """(footer start, key material start, end) of a sealed table's plaintext key metadata."""
    footer_start = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]
    start = data.index(b'{"keyMaterialType"', footer_start)
    return footer_start, start, data.index(b'"}', start) + 2


def _with_footer_key_material(data: bytes, material: bytes, extra_thrift: bytes = b"") -> bytes:
    """``data`` with other key material bytes, its Thrift length and the footer length fixed."""
    footer_start, start, end = _footer_key_material(data)
    length = len(material)
    varint = bytes([length & 0x7F | 0x80, length >> 7]) if length >= 0x80 else bytes([length])
    prefix = data[footer_start : start - 2]  # up to the 2-byte varint of the original
    assert end - start >= 0x80, "the original key material has a 2-byte length"
    footer = prefix + varint + material + extra_thrift + data[end : -8]
    return data[:footer_start] + footer + struct.pack("<I", len(footer)) + data[-4:]


def _spare_bits_changed(data: bytes, field: str) -> bytes:
    # Base64 decoders ignore the unused low bits of the last character before '=', so this
    # spelling decodes to the same key: pyarrow alone would open the table unchanged.
    _footer_start, start, end = _footer_key_material(data)
    value = json.loads(data[start:end])[field]
    last = len(value.rstrip("=")) - 1
    respelled = value[:last] + _BASE64[_BASE64.index(value[last]) ^ 1] + value[last + 1 :]
    assert base64.b64decode(respelled) == base64.b64decode(value)
    return data.replace(value.encode(), respelled.encode())


def _respaced(data: bytes) -> bytes:
    _footer_start, start, end = _footer_key_material(data)
    return _with_footer_key_material(data, data[start:end].replace(b'":', b'": '))


def _unknown_thrift_field(data: bytes) -> bytes:
    # Field 3 of FileCryptoMetaData (binary "hello"): Thrift readers skip unknown fields.
    _footer_start, start, end = _footer_key_material(data)
    return _with_footer_key_material(data, data[start:end], b"\x18\x05hello")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: _spare_bits_changed(d, "wrappedDEK"), id="wrappedDEK-spare-bits"),
        pytest.param(lambda d: _spare_bits_changed(d, "wrappedKEK"), id="wrappedKEK-spare-bits"),
        pytest.param(
            lambda d: _spare_bits_changed(d, "keyEncryptionKeyID"), id="kek-id-spare-bits"
        ),
        pytest.param(_respaced, id="json-spacing"),
        pytest.param(_unknown_thrift_field, id="unknown-thrift-field"),
    ],
)
def test_other_spelling_of_footer_key_metadata_is_refused(
    sealed_cohort: Path, keyring: Keyring, tmp_path: Path, edit
):
    respelled = tmp_path / "respelled.parquet"
    respelled.write_bytes(edit(sealed_cohort.read_bytes()))
    with pytest.raises(WorkbenchError) as caught:
        open_table(respelled, keyring)
    assert str(caught.value) == (
        f"{respelled}: table is damaged or was tampered with (key metadata)"
    )

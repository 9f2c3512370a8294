"""Sealed files (models): round trip, name binding, and every refusal with its reason."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import onnxruntime as ort
import pytest

from workbench.errors import InputError, WorkbenchError
from workbench.sealing.files import open_file, seal_file
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource


def test_round_trip_returns_the_model(sealed_model: Path, keyring: Keyring, demo_assets):
    opened = open_file(sealed_model, "risk-model", keyring)
    assert opened == demo_assets.model.read_bytes()
    session = ort.InferenceSession(opened, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]


def test_ciphertext_hides_the_model(sealed_model: Path, demo_assets):
    plain = demo_assets.model.read_bytes()
    sealed = sealed_model.read_bytes()
    assert plain[64:128] not in sealed
    assert b"LinearClassifier" not in sealed


def test_opened_under_another_name_is_refused(sealed_model: Path, keyring: Keyring):
    with pytest.raises(WorkbenchError) as caught:
        open_file(sealed_model, "other-model", keyring)
    assert str(caught.value) == (
        f"{sealed_model}: was sealed as resource 'risk-model', not 'other-model'"
    )


def test_header_renamed_to_another_resource_fails_authentication(
    sealed_model: Path, keyring: Keyring, tmp_path: Path
):
    # An attacker rewrites the header so the file claims to be another resource whose key
    # the victim holds: the header is associated data, so decryption must fail.
    other_keyset = keyring.get_key("risk-model/file-keyset/main")
    keys = MemoryKeySource({"risk-modem/file-keyset/main": other_keyset})
    renamed = tmp_path / "renamed.sealed"
    renamed.write_bytes(sealed_model.read_bytes().replace(b'"risk-model', b'"risk-modem'))
    with pytest.raises(WorkbenchError, match="authentication failed"):
        open_file(renamed, "risk-modem", keys)


def test_missing_key_is_named(sealed_model: Path):
    with pytest.raises(WorkbenchError) as caught:
        open_file(sealed_model, "risk-model", MemoryKeySource({}))
    assert str(caught.value) == (
        f"{sealed_model}: key 'risk-model/file-keyset/main' is not available: "
        "not held by this key source"
    )


def test_wrong_key_fails_authentication(sealed_model: Path, tmp_path: Path, demo_assets):
    other = Keyring.create(tmp_path / "other.keyring")
    seal_file(demo_assets.model, tmp_path / "copy.sealed", name="risk-model", keyring=other)
    with pytest.raises(WorkbenchError) as caught:
        open_file(sealed_model, "risk-model", other)
    assert str(caught.value) == (
        f"{sealed_model}: sealed file is damaged, truncated, or not for this key "
        "(authentication failed)"
    )


def test_every_tampered_byte_is_refused(sealed_model: Path, keyring: Keyring, tmp_path: Path):
    data = sealed_model.read_bytes()
    tampered = tmp_path / "tampered.sealed"
    accepted = []
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        tampered.write_bytes(changed)
        try:
            open_file(tampered, "risk-model", keyring)
        except (WorkbenchError, InputError) as err:
            assert str(err).startswith(f"{tampered}: ")
        else:
            accepted.append(position)
    assert accepted == []


@pytest.mark.parametrize("keep", [0, 5, 11, 40, -1, -17, -600])
def test_truncated_file_is_refused(sealed_model: Path, keyring: Keyring, tmp_path: Path, keep):
    data = sealed_model.read_bytes()
    truncated = tmp_path / "truncated.sealed"
    truncated.write_bytes(data[:keep])
    with pytest.raises(WorkbenchError) as caught:
        open_file(truncated, "risk-model", keyring)
    message = str(caught.value)
    assert message.startswith(f"{truncated}: ")
    assert any(word in message for word in ("truncated", "not a sealed file", "damaged"))


def test_non_onnx_input_is_refused(tmp_path: Path, keyring: Keyring):
    source = tmp_path / "notes.txt"
    source.write_text("not a model\n")
    out = tmp_path / "out.sealed"
    with pytest.raises(InputError) as caught:
        seal_file(source, out, name="notes", keyring=keyring)
    assert str(caught.value) == f"{source}: is an unrecognised file, not an ONNX model"
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
    assert Keyring.open(keyring.path).entries() == []


def test_invalid_resource_name_is_refused(tmp_path: Path, keyring: Keyring, demo_assets):
    with pytest.raises(InputError, match="invalid resource name 'a/b'"):
        seal_file(demo_assets.model, tmp_path / "x.sealed", name="a/b", keyring=keyring)


@pytest.mark.parametrize("field, value", [
    ("size", None), ("size", "12"), ("size", [1]), ("size", {"a": 1}), ("size", True),
    ("name", 7), ("content", None), ("original", ["m.onnx"]),
])
def test_header_field_of_the_wrong_type_is_damage_not_a_crash(
    sealed_model: Path, keyring: Keyring, tmp_path: Path, field, value
):
    # The header is read before anything authenticates it: a null size used to escape as
    # a TypeError (a traceback in the kernel) instead of one refusal.
    raw = sealed_model.read_bytes()
    (length,) = struct.unpack(">I", raw[8:12])
    header = json.loads(raw[12:12 + length])
    header[field] = value
    edited = json.dumps(header).encode()
    target = tmp_path / "edited.sealed"
    target.write_bytes(raw[:8] + struct.pack(">I", len(edited)) + edited + raw[12 + length:])
    with pytest.raises(WorkbenchError) as caught:
        open_file(target, "risk-model", keyring)
    assert str(caught.value) == (
        f"{target}: sealed file header is damaged ({field} of the wrong type)")

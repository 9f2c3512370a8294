"""The simulated TEE: measurement, platform key, evidence and its verification."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwcrypto.jwk import JWK

from workbench.attestation.formats.simulated import parse_simulated
from workbench.attestation.tee.measure import default_package_dir, measure_install
from workbench.attestation.tee.simulated import SimulatedProvider, load_or_create_platform_key
from workbench.attestation.verify import platform_key
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.simulated import verify_simulated
from workbench.errors import WorkbenchError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
REPORT_DATA = bytes(range(64))


def _provider(**kwargs) -> SimulatedProvider:
    return SimulatedProvider(clock=lambda: NOW, **kwargs)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the installed package: measuring it must not depend on where it lives."""
    target = tmp_path_factory.mktemp("install-a") / "workbench"
    shutil.copytree(default_package_dir(), target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _envelope(evidence: bytes) -> dict:
    return json.loads(evidence)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_evidence_round_trip_says_simulated_everywhere(_isolated_home: Path) -> None:
    provider = _provider()
    evidence = provider.evidence(REPORT_DATA)
    envelope = _envelope(evidence)
    payload = json.loads(_unb64(envelope["payload"]))
    assert envelope["simulated"] is True and envelope["type"] == "workbench-simulated-evidence"
    assert payload["simulated"] is True and payload["tee"] == "simulated"

    verified = verify_simulated(evidence, now=NOW)
    assert verified.tee == "simulated" and verified.simulated is True
    assert verified.report_data == REPORT_DATA
    assert verified.evidence_time == NOW
    assert verified.claims["measurement"] == provider.measurement().measurement
    assert verified.claims["debug"] is False
    key = load_or_create_platform_key()
    assert verified.claims["platform_key"] == platform_key.fingerprint(key.public_key())
    assert [c.name for c in verified.checks] == ["format", "platform-key", "signature"]


def test_platform_key_is_created_private_once(_isolated_home: Path) -> None:
    first = load_or_create_platform_key()
    path = platform_key.private_key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert platform_key.public_key_path().read_bytes() == first.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    second = load_or_create_platform_key()
    assert platform_key.fingerprint(second.public_key()) == platform_key.fingerprint(
        first.public_key()
    )


def test_platform_key_readable_by_others_is_refused(_isolated_home: Path) -> None:
    load_or_create_platform_key()
    os.chmod(platform_key.private_key_path(), 0o644)
    with pytest.raises(WorkbenchError, match=r"accessible to other users \(mode 0644\)"):
        _provider().evidence(REPORT_DATA)


def test_platform_key_of_wrong_curve_is_refused(_isolated_home: Path) -> None:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    path = platform_key.private_key_path()
    path.parent.mkdir(parents=True)
    wrong = ec.generate_private_key(ec.SECP521R1())
    path.write_bytes(wrong.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(WorkbenchError, match=r"must be an ECDSA P-256 \(or P-384\) key"):
        load_or_create_platform_key()


def test_new_platform_key_is_p256_and_signs_es256(_isolated_home: Path) -> None:
    assert load_or_create_platform_key().curve.name == "secp256r1"
    verified = verify_simulated(_provider().evidence(REPORT_DATA), now=NOW)
    assert parse_simulated(_provider().evidence(REPORT_DATA)).alg == "ES256"
    assert ("signature", True, "ES256 by the platform key") in [
        (c.name, c.ok, c.detail) for c in verified.checks]


def test_p384_platform_key_of_an_earlier_version_still_signs_es384(_isolated_home: Path
                                                                   ) -> None:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    path = platform_key.private_key_path()
    path.parent.mkdir(parents=True)
    older = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(older.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    evidence = _provider().evidence(REPORT_DATA)
    assert parse_simulated(evidence).alg == "ES384"
    verified = verify_simulated(evidence, now=NOW)
    assert verified.claims["platform_key"] == platform_key.fingerprint(older.public_key())
    assert verified.report_data == REPORT_DATA


def test_garbage_platform_key_is_refused(_isolated_home: Path) -> None:
    path = platform_key.private_key_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(WorkbenchError, match="not a PEM private key"):
        load_or_create_platform_key()


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_report_data_must_be_64_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="exactly 64 bytes"):
        _provider().evidence(bytes(size))


def test_measurement_is_reproducible_across_locations(package_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "workbench"
    shutil.copytree(package_copy, other)
    kernels = tmp_path / "no-kernels"
    a = measure_install(package_copy, kernels)
    b = measure_install(other, kernels)
    assert a.measurement == b.measurement
    assert len(a.measurement) == 96
    assert a.package_files == sum(1 for p in package_copy.rglob("*") if p.is_file())
    assert a.manifest[0] == "workbench-measurement-v1"
    assert not any(str(tmp_path) in line for line in a.manifest)


def test_measurement_ignores_caches_but_not_code(package_copy: Path, tmp_path: Path) -> None:
    tree = tmp_path / "workbench"
    shutil.copytree(package_copy, tree)
    kernels = tmp_path / "kernels"
    before = measure_install(tree, kernels).measurement
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"cache")
    (tree / "stray.pyc").write_bytes(b"cache")
    assert measure_install(tree, kernels).measurement == before
    (tree / "cli.py").write_text((tree / "cli.py").read_text() + "\n# changed\n")
    assert measure_install(tree, kernels).measurement != before


def test_measurement_covers_kernelspecs(package_copy: Path, tmp_path: Path) -> None:
    kernels = tmp_path / "kernels"
    without = measure_install(package_copy, kernels)
    (kernels / "confidential-python").mkdir(parents=True)
    (kernels / "confidential-python" / "kernel.json").write_text('{"argv": []}')
    with_spec = measure_install(package_copy, kernels)
    assert with_spec.kernelspec_files == 1
    assert with_spec.measurement != without.measurement
    assert any(line.startswith("kernels/confidential-python/kernel.json ")
               for line in with_spec.manifest)


def test_measurement_names_the_interpreter(package_copy: Path, tmp_path: Path) -> None:
    import platform
    import sys

    measured = measure_install(package_copy, tmp_path)
    expected = f"{sys.implementation.name} {platform.python_version()}"
    assert measured.interpreter == expected
    assert f"interpreter {expected}" in measured.manifest


# --- verification refusals --------------------------------------------------------------


def test_untrusted_key_is_refused_naming_its_fingerprint(_isolated_home: Path) -> None:
    evidence = _provider().evidence(REPORT_DATA)
    stranger = ec.generate_private_key(ec.SECP384R1()).public_key()
    presented = platform_key.fingerprint(load_or_create_platform_key().public_key())
    with pytest.raises(EvidenceRejected) as err:
        verify_simulated(evidence, now=NOW, trusted_keys=[stranger])
    assert err.value.check == "platform-key"
    assert f"untrusted platform key sha256:{presented}" in err.value.reason
    assert platform_key.fingerprint(stranger) in err.value.reason


def test_without_local_key_nothing_is_trusted(tmp_path: Path, _isolated_home: Path) -> None:
    evidence = _provider(home=tmp_path / "other-home").evidence(REPORT_DATA)
    with pytest.raises(EvidenceRejected, match="no trusted simulated platform key") as err:
        verify_simulated(evidence, now=NOW)
    assert str(platform_key.public_key_path()) in err.value.reason


@pytest.mark.parametrize("form", ["pem", "path", "jwk", "jwcrypto", "pyca"])
def test_trusted_keys_in_every_form(form: str, tmp_path: Path) -> None:
    home = tmp_path / "h"
    evidence = _provider(home=home).evidence(REPORT_DATA)
    public = load_or_create_platform_key(home).public_key()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    key = {
        "pem": pem,
        "path": platform_key.public_key_path(home),
        "jwk": JWK.from_pyca(public).export_public(as_dict=True),
        "jwcrypto": JWK.from_pyca(public),
        "pyca": public,
    }[form]
    assert verify_simulated(evidence, now=NOW, trusted_keys=[key]).simulated


def test_non_ec_trusted_key_is_refused() -> None:
    evidence = _provider().evidence(REPORT_DATA)
    rsa = JWK.generate(kty="RSA", size=2048).export_public(as_dict=True)
    with pytest.raises(ValueError, match=r"key number 1 is unusable: .*must be an EC public key"):
        verify_simulated(evidence, now=NOW, trusted_keys=[rsa])


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("absent.pem", None, "No such file or directory"),
    ("empty.pem", b"", "is unusable"),
    ("garbage.pem", b"-----BEGIN PUBLIC KEY-----\nxx\n", "is unusable"),
])
def test_unusable_trusted_key_files(tmp_path: Path, name: str, content, reason: str) -> None:
    evidence = _provider().evidence(REPORT_DATA)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as err:
        verify_simulated(evidence, now=NOW, trusted_keys=[path])
    assert f"trusted simulated platform key {path}" in str(err.value)


def _resign_payload(evidence: bytes, change) -> bytes:
    envelope = _envelope(evidence)
    payload = json.loads(_unb64(envelope["payload"]))
    change(payload)
    envelope["payload"] = _b64(json.dumps(payload).encode())
    return json.dumps(envelope).encode()


def test_changed_claims_break_the_signature() -> None:
    evidence = _provider().evidence(REPORT_DATA)

    def change(payload: dict) -> None:
        payload["measurement"] = "00" * 48

    with pytest.raises(EvidenceRejected) as err:
        verify_simulated(_resign_payload(evidence, change), now=NOW)
    assert err.value.check == "signature"
    assert "ES256 signature does not verify" in err.value.reason


def test_payload_naming_another_key_is_refused() -> None:
    evidence = _provider().evidence(REPORT_DATA)

    def change(payload: dict) -> None:
        payload["platform_key"] = "ab" * 32

    with pytest.raises(EvidenceRejected, match="payload names platform key abab") as err:
        verify_simulated(_resign_payload(evidence, change), now=NOW)
    assert err.value.check == "platform-key"


def test_key_swap_in_header_is_refused(tmp_path: Path) -> None:
    """Evidence re-signed by another key that claims to be the trusted one."""
    trusted = _provider().evidence(REPORT_DATA)
    forged = _provider(home=tmp_path / "attacker").evidence(REPORT_DATA)
    forged_env, trusted_env = _envelope(forged), _envelope(trusted)
    forged_env["protected"] = trusted_env["protected"]  # claim the trusted key in the header
    with pytest.raises(EvidenceRejected) as err:
        verify_simulated(json.dumps(forged_env).encode(), now=NOW)
    assert err.value.check == "platform-key"
    assert "payload names platform key" in err.value.reason


def test_parse_exposes_the_signed_claims() -> None:
    evidence = _provider().evidence(REPORT_DATA)
    parsed = parse_simulated(evidence)
    assert parsed.report_data == REPORT_DATA
    assert parsed.timestamp == NOW
    assert parsed.covers["interpreter"] == parsed.runtime["implementation"] + " " + (
        parsed.runtime["version"]
    )
    assert parsed.compact_jws.count(".") == 2


def test_header_key_off_the_curve_is_refused() -> None:
    evidence = _provider().evidence(REPORT_DATA)
    envelope = _envelope(evidence)
    header = json.loads(_unb64(envelope["protected"]))
    header["jwk"]["y"] = _b64(b"\x01" * 32)
    envelope["protected"] = _b64(json.dumps(header).encode())
    with pytest.raises(EvidenceRejected, match="header carries no valid P-256 public key") as err:
        verify_simulated(json.dumps(envelope).encode(), now=NOW)
    assert err.value.check == "platform-key"

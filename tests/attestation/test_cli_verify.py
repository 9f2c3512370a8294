"""`workbench verify`, `measure` and `policy init` as a user runs them: real processes, exit codes.

Exit codes: 0 valid (and accepted by --policy), 1 invalid or refused, 2 malformed/unreadable.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from workbench.attestation.tee.measure import measure_install
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify.certs import load_certificate

TDX_TIME = "2025-03-01T00:00:00Z"


@pytest.fixture
def run(workbench_cli: str, _isolated_home: Path):
    def invoke(*args: str | Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [workbench_cli, *map(str, args)], capture_output=True, text=True, timeout=120,
            env={**os.environ, "WORKBENCH_HOME": str(_isolated_home)},
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return invoke


def _measured_around(action):
    """Run ``action`` and return (its result, measurements before and after it).

    Other work may change package files while tests run; the install's measurement is then
    one of the two values, and a mismatch with both still fails.
    """
    before = measure_install()
    result = action()
    return result, {before.measurement, measure_install().measurement}, before


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("workbench: error: ")
    return lines[0]


@pytest.fixture
def simulated_file(tmp_path: Path) -> Path:
    path = tmp_path / "evidence.json"
    path.write_bytes(SimulatedProvider().evidence(bytes(64)))
    return path


# --- valid and invalid evidence ----------------------------------------------------------


def test_tdx_quote_is_valid(run, vectors: Path) -> None:
    result = run("verify", vectors / "tdx/go-tdx-guest-quote-v4.dat", "--now", TDX_TIME)
    assert result.returncode == 0, result.stderr
    assert "tee: tdx" in result.stdout
    assert "ok     quote-signature" in result.stdout
    assert "tcb status: not evaluated (no --collateral)" in result.stdout
    assert "verdict: VALID" in result.stdout


def test_json_output(run, vectors: Path) -> None:
    result = run("verify", vectors / "sgx/trustee-occlum-quote-v3.dat", "--json",
                 "--now", "2025-06-01")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["result"] == "valid"
    assert document["evidence"]["tee"] == "sgx"
    assert document["evidence"]["claims"]["mrenclave"].startswith("8f173e46")
    assert document["evaluated_at"] == "2025-06-01T00:00:00+00:00"


def test_snp_without_certs_is_unverifiable(run, vectors: Path) -> None:
    result = run("verify", vectors / "sev-snp/go-sev-guest-attestation.bin")
    assert result.returncode == 1
    assert "verdict: INVALID (endorsement-key: the SEV-SNP report is unverifiable" in (
        result.stdout
    )
    assert "unverifiable" in _one_error_line(result)


def test_snp_with_pem_certs_is_valid(run, vectors: Path, tmp_path: Path) -> None:
    der = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    pem = tmp_path / "vcek.pem"
    pem.write_bytes(load_certificate(der).public_bytes(Encoding.PEM))
    result = run("verify", vectors / "sev-snp/trustee-test-report.bin", "--certs", pem)
    assert result.returncode == 0, result.stderr
    assert "tee: snp" in result.stdout


def test_expired_vlek_refused_now_accepted_then(run, vectors: Path) -> None:
    args = ("verify", vectors / "sev-snp/trustee-vlek-report.bin", "--certs",
            vectors / "sev-snp/trustee-vlek.der")
    if datetime.now(UTC) > datetime(2025, 12, 10, 22, 14, 21, tzinfo=UTC):
        late = run(*args)
        assert late.returncode == 1
        assert "expired" in _one_error_line(late)
    assert run(*args, "--now", "2025-06-01").returncode == 0


def test_test_root_quote_is_invalid(run, vectors: Path) -> None:
    result = run("verify", vectors / "negative/intel-qvl-test-root-sgx-quote.dat",
                 "--now", "2025-06-01", "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["result"] == "invalid"
    assert document["reason"]


# --- malformed and unreadable -----------------------------------------------------------


def _random_file(tmp_path: Path, seed: int, size: int) -> Path:
    path = tmp_path / f"random-{seed}.bin"
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def test_malformed_inputs_exit_2(run, vectors: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes((vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes()[:700])
    short_snp = tmp_path / "short.bin"
    short_snp.write_bytes((vectors / "sev-snp/trustee-test-report.bin").read_bytes()[:1000])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"type": "workbench-simulated-evidence"')
    cases = {
        empty: "empty input",
        truncated: "",
        short_snp: "unrecognised evidence",
        bad_json: "simulated evidence: envelope is not valid JSON",
        vectors / "SOURCES.md": "unrecognised evidence",
        vectors / "roots/intel-sgx-root-ca.pem": "unrecognised evidence",
        tmp_path: "is a folder, not evidence",
        tmp_path / "absent.dat": "cannot read evidence: No such file or directory",
        _random_file(tmp_path, 1, 1184): "",
        _random_file(tmp_path, 2, 5000): "",
        _random_file(tmp_path, 3, 1): "",
    }
    for path, reason in cases.items():
        result = run("verify", path)
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        line = _one_error_line(result)
        assert reason in line, (path, line)


def test_typed_snp_on_random_bytes_is_malformed(run, tmp_path: Path) -> None:
    result = run("verify", _random_file(tmp_path, 4, 1184), "--type", "snp")
    assert result.returncode == 2
    _one_error_line(result)


def test_bad_now(run, simulated_file: Path) -> None:
    result = run("verify", simulated_file, "--now", "yesterday")
    assert result.returncode == 2
    assert "--now: 'yesterday' is not an ISO 8601 time" in _one_error_line(result)


def test_type_mismatch(run, vectors: Path) -> None:
    result = run("verify", vectors / "tdx/trustee-quote-v4.dat", "--type", "snp")
    assert result.returncode == 2
    assert "evidence is TDX evidence, not snp" in _one_error_line(result)


def test_missing_certificate_file(run, vectors: Path, tmp_path: Path) -> None:
    result = run("verify", vectors / "sev-snp/trustee-test-report.bin", "--certs",
                 tmp_path / "nope.der")
    assert result.returncode == 2
    assert "cannot read a certificate" in _one_error_line(result)


def test_collateral_folder_missing(run, vectors: Path, tmp_path: Path) -> None:
    result = run("verify", vectors / "tdx/go-tdx-guest-quote-v4.dat",
                 "--collateral", tmp_path / "absent")
    assert result.returncode == 2
    _one_error_line(result)


def test_expired_collateral_refused(run, vectors: Path) -> None:
    result = run("verify", vectors / "tdx/go-tdx-guest-quote-v4.dat",
                 "--collateral", vectors / "tdx/collateral", "--now", TDX_TIME)
    assert result.returncode == 1
    assert "expired" in _one_error_line(result)


def test_collateral_chain_given_separately(run, vectors: Path) -> None:
    # sgx/collateral has no issuer chain: without one it is refused, with one it is read,
    # and then Intel's rules refuse pairing this SGX quote with that (TDX) collateral.
    without = run("verify", vectors / "sgx/trustee-occlum-quote-v3.dat",
                  "--collateral", vectors / "sgx/collateral", "--now", TDX_TIME)
    assert without.returncode == 2
    assert "no TCB signing chain" in _one_error_line(without)
    assert "--collateral-chain" in _one_error_line(without)
    given = run("verify", vectors / "sgx/trustee-occlum-quote-v3.dat",
                "--collateral", vectors / "sgx/collateral",
                "--collateral-chain", vectors / "tdx/collateral/tcbInfoIssuerChain.pem",
                "--now", TDX_TIME)
    assert given.returncode == 1
    assert "tcb-info: no TCB info for this SGX platform (FMSPC 00606a000000)" in (
        _one_error_line(given))
    assert "TCB info is for TDX platforms but the quote is from SGX" in _one_error_line(given)


def test_bad_report_data_argument(run, simulated_file: Path) -> None:
    result = run("verify", simulated_file, "--report-data", "abcd")
    assert result.returncode == 2
    assert "--report-data: expected 128 hex digits" in _one_error_line(result)


# --- with a policy ---------------------------------------------------------------------


def _policy_and_evidence(run, tmp_path: Path, *init_args: str) -> tuple[Path, Path, str]:
    """`policy init`, then evidence, both of the same tree: other work running beside the
    tests may change package files in between, so retry until both measured the same."""
    policy, evidence = tmp_path / "policy.json", tmp_path / "evidence.json"
    for _ in range(5):
        init = run("policy", "init", "--force", "--out", policy, *init_args)
        assert init.returncode == 0, init.stderr
        evidence.write_bytes(SimulatedProvider().evidence(bytes(64)))
        pinned = json.loads(policy.read_text())["reference_values"]["simulated"]["measurement"]
        if pinned == measure_install().measurement:
            return policy, evidence, init.stdout
    pytest.fail("the package tree kept changing while the test ran")


def test_policy_init_then_verify_simulated(run, tmp_path: Path) -> None:
    policy, evidence, _ = _policy_and_evidence(run, tmp_path, "--allow-simulation")
    result = run("verify", evidence, "--policy", policy, "--report-data", "00" * 64)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tee: simulated  [SIMULATED: not hardware-protected]" in result.stdout
    assert "WARN simulation:" in result.stdout
    assert "pass simulated.measurement:" in result.stdout
    assert "pass report-data:" in result.stdout
    assert "verdict: WARNING (accepted by policy" in result.stdout


def test_policy_without_simulation_refuses(run, tmp_path: Path) -> None:
    policy, evidence, printed = _policy_and_evidence(run, tmp_path)
    assert "refuses simulated evidence" in printed
    result = run("verify", evidence, "--policy", policy, "--report-data", "11" * 64)
    assert result.returncode == 1
    assert "FAIL simulation: simulated evidence is refused" in result.stdout
    assert "FAIL report-data:" in result.stdout
    assert "pass simulated.measurement:" in result.stdout
    assert "verdict: CONTRAINDICATED (refused by policy" in result.stdout
    assert "simulation, report-data" in result.stdout


def test_policy_refusal_in_json(run, vectors: Path, tmp_path: Path) -> None:
    policy = tmp_path / "tdx.json"
    policy.write_text(json.dumps({"id": "tdx-strict", "reference_values": {
        "tdx": {"mrtd": "00" * 48}}}))
    result = run("verify", vectors / "tdx/go-tdx-guest-quote-v4.dat", "--now", TDX_TIME,
                 "--policy", policy, "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["result"] == "refused"
    failed = {r["name"]: r for r in document["appraisal"]["rules"] if not r["passed"]}
    assert set(failed) == {"tdx.mrtd", "reference-values", "tcb-status"}
    assert failed["reference-values"]["reason"].startswith(
        "policy pins mrtd for tdx but not rtmr1, rtmr2")
    assert failed["tcb-status"]["reason"].startswith("TCB status unknown")
    assert document["appraisal"]["status"] == "contraindicated"


def test_invalid_policy_is_malformed_input(run, tmp_path: Path, simulated_file: Path) -> None:
    policy = tmp_path / "bad.json"
    policy.write_text(json.dumps({"id": "p", "allow_simulaton": True}))
    result = run("verify", simulated_file, "--policy", policy)
    assert result.returncode == 2
    assert "'allow_simulaton' was unexpected" in _one_error_line(result)


def test_untrusted_platform_key(run, tmp_path: Path) -> None:
    evidence = tmp_path / "foreign.json"
    evidence.write_bytes(SimulatedProvider(home=tmp_path / "other").evidence(bytes(64)))
    result = run("verify", evidence)
    assert result.returncode == 1
    assert "untrusted platform key sha256:" in _one_error_line(result)
    trusted = run("verify", evidence, "--platform-key",
                  tmp_path / "other/simulated-tee/platform-key.pub.pem")
    assert trusted.returncode == 0, trusted.stderr


# --- measure and policy init ------------------------------------------------------------


def test_measure(run) -> None:
    result, measurements, expected = _measured_around(
        lambda: run("measure", "--json", "--manifest"))
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["measurement"] in measurements
    assert document["covers"]["interpreter"] == expected.interpreter
    assert document["manifest"][:2] == list(expected.manifest[:2])
    covers = document["covers"]
    assert len(document["manifest"]) == covers["package_files"] + covers["kernelspec_files"] + 2
    text, measurements, _ = _measured_around(lambda: run("measure"))
    shown = text.stdout.split("measurement (sha384): ")[1].split()[0]
    assert shown in measurements
    assert "platform key: not created yet" in text.stdout


def test_policy_init_to_stdout_and_overwrite_rules(run, tmp_path: Path) -> None:
    printed = run("policy", "init", "--id", "mine")
    assert printed.returncode == 0
    assert json.loads(printed.stdout)["id"] == "mine"
    assert "refuses simulated evidence" in printed.stderr
    target = tmp_path / "p.json"
    target.write_text("keep me")
    refused = run("policy", "init", "--out", target)
    assert refused.returncode == 1
    assert "exists; pass --force to overwrite it" in _one_error_line(refused)
    assert target.read_text() == "keep me"
    forced = run("policy", "init", "--out", target, "--force", "--allow-simulation")
    assert forced.returncode == 0
    assert json.loads(target.read_text())["allow_simulation"] is True


def test_tdx_quote_with_collateral_and_policy(run, vectors: Path, tmp_path: Path) -> None:
    """Trustee's TD is a debug TD: refused by default, accepted with a warning if allowed."""
    quote = vectors / "tdx/trustee-quote-v4.dat"
    first = json.loads(run("verify", quote, "--now", "2023-06-20", "--json").stdout)
    policy = tmp_path / "tdx.json"
    claims = first["evidence"]["claims"]
    document = {"id": "tdx-image", "reference_values": {"tdx": {
        "mrtd": claims["mrtd"], "rtmr1": claims["rtmr1"], "rtmr2": claims["rtmr2"]}}}
    policy.write_text(json.dumps(document))
    args = ("verify", quote, "--collateral", vectors / "tdx/collateral", "--now", "2023-06-20",
            "--policy", policy)
    refused = run(*args)
    assert refused.returncode == 1
    assert "tcb status: UpToDate" in refused.stdout
    assert "pass tcb-status: TCB status UpToDate is accepted" in refused.stdout
    assert "FAIL debug: debug mode is on" in refused.stdout
    assert "verdict: CONTRAINDICATED (refused by policy tdx-image: debug)" in refused.stdout
    policy.write_text(json.dumps({**document, "debug_allowed": True}))
    accepted = run(*args)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "WARN debug:" in accepted.stdout
    assert "verdict: WARNING (accepted by policy tdx-image)" in accepted.stdout


def test_policy_init_into_a_missing_folder(run, tmp_path: Path) -> None:
    result = run("policy", "init", "--out", tmp_path / "no" / "such" / "policy.json")
    assert result.returncode == 2
    assert "cannot write: No such file or directory" in _one_error_line(result)


def test_policy_init_sealed_requires_a_sealed_session(run, tmp_path: Path) -> None:
    from workbench.attestation.appraise import load_policy

    sealed = run("policy", "init", "--sealed", "--allow-simulation")
    assert sealed.returncode == 0
    document = json.loads(sealed.stdout)
    assert document["sealed_session"] == "required"
    assert load_policy(document).sealed_session == "required"
    assert "sealed_session" not in json.loads(run("policy", "init").stdout)

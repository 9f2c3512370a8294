"""The VCEK from configfs-tsm's certificate table reaches the real broker with the report.

The recorded report cannot bind a live session (its report data is fixed), so the broker
always refuses it in the end; what differs is where. Without the host's table the broker
cannot check the report's signature at all; with it, the signature and the VCEK's chain to
AMD's pinned roots verify and the refusal moves on to the session binding.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from kbs_helpers import running_broker
from snp_cert_table import ask_ark_der, build_table
from tsm_imitation import FakeTsm, guest_dev

from workbench.attestation.tee import certified_evidence
from workbench.attestation.tee.configfs_tsm import ConfigfsTsmProvider
from workbench.brokerclient import BrokerSession
from workbench.brokerclient.exchange import BrokerError
from workbench.kernel.report import AttestationReport
from workbench.kernel.state import RecordingProvider


def _attest(vectors: Path, base: Path, broker_url: str, auxblob: bytes) -> str:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    fake = FakeTsm(base / "tsm", report, "sev_guest", auxblob=auxblob)
    fake.start()
    provider = ConfigfsTsmProvider(root=base / "tsm", dev=guest_dev(base, "sev-guest"))
    with pytest.raises(BrokerError) as err:
        BrokerSession(broker_url, provider=provider).attest()
    fake.finish()
    return str(err.value)


def test_the_vcek_in_the_auxblob_lets_the_broker_verify_the_report(
        vectors: Path, tmp_path: Path) -> None:
    vcek = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    ask, ark = ask_ark_der(vectors / "roots/amd-ask_ark_milan.pem")
    with running_broker(tmp_path / "broker") as broker:
        without = _attest(vectors, tmp_path / "bare", broker.url, b"")
        with_table = _attest(vectors, tmp_path / "table", broker.url,
                             build_table([("ark", ark), ("ask", ask), ("vcek", vcek)]))
    assert "endorsement-key: the SEV-SNP report is unverifiable without the VCEK" in without
    assert with_table == ("key broker refused the evidence: evidence report data does not "
                          "bind this session: it must be report_data_for(nonce, tee-pubkey, "
                          "transport-key, session-key) of this challenge")


def test_the_kernel_reports_the_vcek_to_the_lab_extension(vectors: Path, tmp_path: Path
                                                          ) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    vcek = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest", auxblob=build_table([("vcek", vcek)]))
    fake.start()
    recording = RecordingProvider(
        ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "sev-guest")))
    assert certified_evidence(recording, bytes(64)) == (report, (vcek,))
    fake.finish()
    shown = AttestationReport(
        runtime="cvm", broker="http://127.0.0.1:1", token="t", claims={},
        evidence=recording.last_evidence, certificates=recording.last_certificates,
        nonce="n", nonce_issued_at=recording.last_requested_at, tee_pubkey={"kty": "EC"},
    ).evidence_message()
    assert shown["certs"] == [base64.b64encode(vcek).decode()]
    assert base64.b64decode(shown["evidence"]) == report

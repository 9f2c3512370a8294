"""The server's verdict on kernel reports: every refusal and every 'cannot check' names its
reason; a sound simulated kernel is 'simulated' with every check and rule passing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from jwcrypto.jwk import JWK
from labserver_reports import make_report, public, sim_policy, tamper_payload, tee_key

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.verdict import CHECKS, BadReport, TrustSettings, judge, parse_report


def _trust(*keys: JWK, **options) -> TrustSettings:
    published = [JWK(**k.export_public(as_dict=True)) for k in keys]
    return TrustSettings(broker_keys=published, broker_url="http://127.0.0.1:1",
                         key_source="test", **options)


def _judge(body: dict, *keys: JWK, **options) -> dict:
    return judge(parse_report(body), _trust(*keys, **options))


def _failed(verdict: dict) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in verdict["checks"] if not c["ok"]}


def test_sound_simulated_kernel(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "simulated", verdict["reason"]
    assert verdict["reason"] == ""
    # Every row, except the transport-key row, which needs the checker's own connection.
    assert [c["name"] for c in verdict["checks"]] == [row.name for row in CHECKS
                                                      if row.name != "transport-key"]
    assert all(c["ok"] for c in verdict["checks"])
    assert verdict["evidence"]["simulated"] is True
    assert verdict["evidence"]["claims"]["measurement"] == made.measurement
    rules = verdict["appraisal"]["rules"]
    assert rules and all(r["passed"] for r in rules)
    assert verdict["appraisal"]["failed_rules"] == []
    assert verdict["binding"]["ok"] is True
    assert verdict["token"]["nonce"] == made.nonce
    assert verdict["token"]["expired"] is False


def test_signature_by_another_key_is_refused(provider: SimulatedProvider, broker_key: JWK
                                             ) -> None:
    made = make_report(provider, JWK.generate(kty="EC", crv="P-256"))
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "signature does not verify" in verdict["reason"]
    # Nothing from an unauthenticated token is shown as if it were checked.
    assert verdict["token"] is None and verdict["appraisal"] is None
    assert verdict["evidence"] is None
    assert list(_failed(verdict)) == ["token-signature"]


def test_edited_payload_is_refused(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key, policy=sim_policy(provider, allow_simulation=False))
    made.body["token"] = tamper_payload(made.body["token"], {"submods": {"kernel": {
        "ear.status": "affirming"}}})
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "signature does not verify" in verdict["reason"]


def test_token_for_another_kernels_key_is_refused(provider: SimulatedProvider,
                                                  broker_key: JWK) -> None:
    other = tee_key()
    made = make_report(provider, broker_key, bound_key=other)
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "bound to another kernel's key" in _failed(verdict)["kernel-key"]
    assert verdict["reason"] == _failed(verdict)["kernel-key"]


def test_token_without_kernel_key_is_refused(provider: SimulatedProvider,
                                             broker_key: JWK) -> None:
    made = make_report(provider, broker_key, extra={"tee-pubkey": None})
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "binds no kernel key" in _failed(verdict)["kernel-key"]


def test_nonce_the_kernel_reports_must_be_the_tokens(provider: SimulatedProvider,
                                                     broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    made.body["nonce"] = "some-other-nonce"
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "different nonce" in _failed(verdict)["nonce"]


def test_evidence_for_another_challenge_does_not_bind(provider: SimulatedProvider,
                                                      broker_key: JWK) -> None:
    made = make_report(provider, broker_key, evidence_nonce="another-challenge")
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "does not bind" in _failed(verdict)["binding"]
    assert verdict["binding"]["ok"] is False
    # The broker's appraisal of that evidence failed its report-data rule as well.
    assert "report-data" in verdict["appraisal"]["failed_rules"]


def test_evidence_swapped_for_other_evidence_is_refused(provider: SimulatedProvider,
                                                        broker_key: JWK) -> None:
    first = make_report(provider, broker_key)
    kernel = tee_key()
    second = make_report(provider, broker_key, kernel_key=kernel)
    # The second kernel's token with the first kernel's evidence and key: the evidence binds
    # another nonce and key, so it cannot pass as the appraised one.
    body = {**first.body, "token": second.body["token"], "nonce": second.nonce,
            "tee_pubkey": public(kernel)}
    verdict = _judge(body, broker_key)
    assert verdict["state"] == "refused"
    failed = _failed(verdict)
    assert "does not bind" in failed["binding"]
    assert "not the evidence the broker appraised" in failed["appraised-evidence"]


def test_evidence_from_an_untrusted_platform_is_refused(provider: SimulatedProvider,
                                                        broker_key: JWK, tmp_path) -> None:
    made = make_report(provider, broker_key)
    stranger = tmp_path / "stranger.pem"
    # Another platform's key: the server trusts only that one, not the kernel's.
    other = SimulatedProvider(home=tmp_path / "other-home", package_dir=tmp_path)
    other.evidence(bytes(64))
    stranger.write_bytes((tmp_path / "other-home/simulated-tee/platform-key.pub.pem")
                         .read_bytes())
    verdict = _judge(made.body, broker_key, simulated_keys=[stranger])
    assert verdict["state"] == "refused"
    assert "platform-key: signed by untrusted platform key" in _failed(verdict)["evidence"]


def test_malformed_evidence_is_refused(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    made.body["evidence"] = base64.b64encode(b"not evidence at all").decode()
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "malformed" in _failed(verdict)["evidence"]


def test_policy_failure_is_refused_with_the_rules(provider: SimulatedProvider,
                                                  broker_key: JWK) -> None:
    made = make_report(provider, broker_key, policy=sim_policy(provider, allow_simulation=False))
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert verdict["appraisal"]["failed_rules"] == ["simulation"]
    assert "policy 'labserver-test' refuses this kernel: simulation:" in verdict["reason"]


def _provider_at(fixed_package, moment: datetime) -> SimulatedProvider:
    return SimulatedProvider(package_dir=fixed_package, kernels_dir=fixed_package / "none",
                             clock=lambda: moment)


def test_expired_token_is_unverified_but_still_read(fixed_package, broker_key: JWK) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    made = make_report(_provider_at(fixed_package, past), broker_key, now=past, lifetime_s=60)
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "unverified"
    assert "expired at" in verdict["reason"]
    assert verdict["token"]["expired"] is True
    # Authentic, so what the broker appraised then is still shown.
    assert verdict["evidence"]["claims"]["measurement"] == made.measurement
    assert all(c["ok"] for c in verdict["checks"] if c["name"] != "token-fresh")


def test_expired_token_with_bad_signature_is_refused(fixed_package, broker_key: JWK) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    made = make_report(_provider_at(fixed_package, past), JWK.generate(kty="EC", crv="P-256"),
                       now=past, lifetime_s=60)
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "refused"
    assert "signature does not verify" in verdict["reason"]


def test_missing_evidence_is_unverified(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    del made.body["evidence"]
    verdict = _judge(made.body, broker_key)
    assert verdict["state"] == "unverified"
    assert verdict["reason"] == "the kernel reported no evidence to check"


def test_no_broker_key_is_unverified(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    verdict = judge(parse_report(made.body), TrustSettings(
        broker_keys=[], key_problem="cannot reach the key broker at http://127.0.0.1:9"))
    assert verdict["state"] == "unverified"
    assert verdict["reason"] == "cannot reach the key broker at http://127.0.0.1:9"
    assert [c["name"] for c in verdict["checks"]] == ["broker-key"]


def test_the_right_key_among_several(provider: SimulatedProvider, broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    verdict = _judge(made.body, JWK.generate(kty="EC", crv="P-256"), broker_key)
    assert verdict["state"] == "simulated"
    assert verdict["broker"]["kid"] == broker_key.thumbprint()


@pytest.mark.parametrize(("body", "reason"), [
    ([], "request body must be a JSON object"),
    ({}, "token is missing"),
    ({"token": "t"}, "tee_pubkey must be the kernel's public JWK"),
    ({"token": "t", "tee_pubkey": {"kty": "EC"}, "evidence": "@@"}, "evidence is not valid"),
    ({"token": "t", "tee_pubkey": {"kty": "EC"}, "evidence": 5}, "evidence must be a base64"),
    ({"token": "t", "tee_pubkey": {"kty": "EC"}, "transport_key": "zz"},
     "transport_key is not valid hex"),
    ({"token": "t", "tee_pubkey": {"kty": "EC"}, "certs": ["a"] * 9}, "certs must be a list"),
    ({"token": "t", "tee_pubkey": {"kty": "EC"}, "nonce": 3}, "nonce must be a string"),
    ({"token": "x" * 300_000, "tee_pubkey": {"kty": "EC"}}, "token is longer than"),
])
def test_bad_reports_name_the_field(body, reason: str) -> None:
    with pytest.raises(BadReport, match=reason):
        parse_report(body)

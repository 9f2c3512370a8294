"""The verdict engine on a kernel locked to a sealed session: the binding includes the
session key, and the token and the kernel must name the same one."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from labserver_reports import ISSUER, public, sim_policy, tee_key

from workbench.attestation.appraise import appraise, load_policy
from workbench.attestation.appraise.ear import issue_token
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.verify import verify_evidence
from workbench.protocol.claims import SESSION_KEY_CLAIM
from workbench.sealed.channel import public_point
from workbench.verdict import BadReport, TrustSettings, judge, parse_report


def _key() -> bytes:
    return public_point(ec.generate_private_key(ec.SECP256R1()).public_key())


def _report(provider, broker_key: JWK, *, bound: bytes, stated: bytes | None,
            reported: bytes, certificate: dict | None = None,
            bound_certificate: bytes = b"") -> dict:
    now = datetime.now(UTC)
    kernel = public(tee_key())
    nonce = base64.b64encode(uuid.uuid4().bytes).decode()
    data = provider.evidence(report_data_for(nonce, kernel, b"", bound, bound_certificate))
    evidence = verify_evidence(data, now=now)
    appraisal = appraise(evidence, load_policy(sim_policy(provider)), now=now)
    extra = {"tee-pubkey": kernel, "workbench.resources": {}}
    if stated is not None:
        extra[SESSION_KEY_CLAIM] = stated.hex()
    token = issue_token(appraisal, evidence, signing_key=broker_key, issuer=ISSUER,
                        nonce=nonce, now=now, extra=extra)
    body = {"token": token, "tee_pubkey": kernel, "nonce": nonce,
            "evidence": base64.b64encode(data).decode()}
    if reported:
        body["session_key"] = reported.hex()
    if certificate is not None:
        body["session_certificate"] = certificate
    return body


def _judge(body: dict, broker_key: JWK):
    trust = TrustSettings(broker_keys=[JWK(**broker_key.export_public(as_dict=True))],
                          key_source="test")
    return judge(parse_report(body), trust)


def test_a_locked_kernel_is_judged_with_its_session_key(provider, broker_key) -> None:
    key = _key()
    verdict = _judge(_report(provider, broker_key, bound=key, stated=key, reported=key),
                     broker_key)
    assert verdict.state == "simulated", verdict.reason
    assert verdict.check("session-key").ok and verdict.check("binding").ok


def test_an_unlocked_kernel_says_so(provider, broker_key) -> None:
    verdict = _judge(_report(provider, broker_key, bound=b"", stated=None, reported=b""),
                     broker_key)
    assert verdict.state == "simulated"
    assert verdict.check("session-key").detail == "the kernel is not locked to a sealed session"


@pytest.mark.parametrize(("case", "failed"), [
    ("kernel hides its lock", {"binding", "session-key"}),
    ("kernel claims a lock it lacks", {"binding", "session-key"}),
    ("another frontend's key", {"binding", "session-key"}),
])
def test_a_session_key_mismatch_is_refused(provider, broker_key, case, failed) -> None:
    key, other = _key(), _key()
    bound, stated, reported = {
        "kernel hides its lock": (key, key, b""),
        "kernel claims a lock it lacks": (b"", None, key),
        "another frontend's key": (key, key, other),
    }[case]
    verdict = _judge(_report(provider, broker_key, bound=bound, stated=stated,
                             reported=reported), broker_key)
    assert verdict.state == "refused"
    assert {c.name for c in verdict.checks if not c.ok} == failed


@pytest.mark.parametrize("bad", ["04ab", "zz" * 65, 65])
def test_a_malformed_session_key_is_a_bad_report(bad) -> None:
    with pytest.raises(BadReport, match="session_key"):
        parse_report({"token": "t", "tee_pubkey": {"kty": "EC"}, "session_key": bad})


def test_a_certified_session_binds_its_certificate_too(provider, broker_key) -> None:
    from workbench.sealed.certificate import certify

    analyst, session = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    key = public_point(session.public_key())
    kernel = public(tee_key())
    certificate = certify(analyst, session.public_key(), session.public_key(), kernel)
    bound = _report(provider, broker_key, bound=key, stated=key, reported=key,
                    certificate=certificate.to_json(), bound_certificate=certificate.digest())
    assert _judge(bound, broker_key).check("binding").ok
    # A certificate the evidence does not bind (swapped in by whoever relays the report).
    other = certify(ec.generate_private_key(ec.SECP256R1()), session.public_key(),
                    session.public_key(), kernel)
    swapped = _judge({**bound, "session_certificate": other.to_json()}, broker_key)
    assert not swapped.check("binding").ok
    with pytest.raises(BadReport, match="session_certificate: a session certificate has "
                                        "exactly the members"):
        parse_report({**bound, "session_certificate": {"v": 1}})

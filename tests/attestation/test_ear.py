"""EAR results: signed ES256 JWTs in the veraison/ear shape, with reasons for every refusal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench.attestation.appraise import EarStatus, appraise, load_policy
from workbench.attestation.appraise.ear import (
    EAR_PROFILE,
    TokenInvalid,
    describe_claim,
    issue_token,
    read_claims,
    submod,
    verify_token,
)
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SIGNER = JWK.generate(kty="EC", crv="P-256")
VERIFIER = JWK.from_json(SIGNER.export_public())


@pytest.fixture
def appraised():
    provider = SimulatedProvider(clock=lambda: NOW)
    evidence = verify_evidence(provider.evidence(bytes(64)), now=NOW)
    policy = load_policy({"id": "sim-policy", "allow_simulation": True, "reference_values": {
        "simulated": {"measurement": provider.measurement().measurement}}})
    return appraise(evidence, policy, now=NOW), evidence


def _token(appraised, **kwargs) -> str:
    appraisal, evidence = appraised
    options = {"signing_key": SIGNER, "issuer": "kbs-test", "nonce": "n0nce-abcdefgh",
               "now": NOW, **kwargs}
    return issue_token(appraisal, evidence, **options)


def _sign(claims: dict, alg: str = "ES256", key: JWK = SIGNER) -> str:
    jws = JWS(json.dumps(claims).encode())
    jws.add_signature(key, alg=alg, protected=json.dumps({"alg": alg, "typ": "JWT"}))
    return jws.serialize(compact=True)


def test_token_round_trip(appraised) -> None:
    claims = verify_token(_token(appraised), VERIFIER, now=NOW + timedelta(seconds=5))
    assert claims["eat_profile"] == EAR_PROFILE
    assert claims["eat_nonce"] == "n0nce-abcdefgh"
    assert claims["iss"] == "kbs-test"
    assert claims["exp"] - claims["iat"] == 300
    kernel = submod(claims)
    assert kernel["ear.status"] == "warning"
    assert kernel["ear.appraisal-policy-id"] == "sim-policy"
    assert kernel["ear.trustworthiness-vector"]["hardware"] == 32
    assert kernel["ear.veraison.annotated-evidence"]["simulated"] is True
    assert {r["name"] for r in kernel["ear.workbench.rules"]} >= {"simulation", "freshness"}
    ear = read_claims(claims)
    assert ear.submods["kernel"].status is EarStatus.WARNING


def test_header_names_the_signing_key(appraised) -> None:
    header = json.loads(base64.urlsafe_b64decode(_token(appraised).split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "JWT", "kid": SIGNER.thumbprint()}


def test_extra_claims_cannot_override_the_result(appraised) -> None:
    claims = verify_token(_token(appraised, extra={"submods": {}, "tee-pubkey": {"k": 1}}),
                          VERIFIER, now=NOW)
    assert claims["tee-pubkey"] == {"k": 1}
    assert "kernel" in claims["submods"]


@pytest.mark.parametrize(
    "name",
    ["veraison-ear-claims.json", "veraison-ear-claims-tv-ok.json",
     "veraison-ear-claims-key-attestation-ok.json", "trustee-example.token.json"],
)
def test_reads_other_verifiers_claims(vectors: Path, name: str) -> None:
    raw = json.loads((vectors / "ear" / name).read_text())
    ear = read_claims(raw)
    assert ear.verifier_id["developer"] == raw["ear.verifier-id"]["developer"]
    for key, value in raw["submods"].items():
        assert ear.submods[key].status.value == value["ear.status"]
        assert ear.submods[key].trust_vector == value.get("ear.trustworthiness-vector", {})


def test_trustee_example_is_contraindicated(vectors: Path) -> None:
    ear = read_claims(json.loads((vectors / "ear/trustee-example.token.json").read_text()))
    cpu0 = ear.submods["cpu0"]
    assert cpu0.status is EarStatus.CONTRAINDICATED
    assert EarStatus.of_claim(cpu0.trust_vector["hardware"]) is EarStatus.CONTRAINDICATED
    assert cpu0.annotated_evidence["sgx"]["tcb_status"] == "OutOfDate"


def test_veraison_claims_signed_by_us_verify_with_our_key(vectors: Path) -> None:
    raw = json.loads((vectors / "ear/veraison-ear-claims-tv-ok.json").read_text())
    token = _sign({**raw, "exp": int(NOW.timestamp()) + 60, "iat": int(NOW.timestamp())})
    claims = verify_token(token, VERIFIER, now=NOW)
    assert submod(claims, "test")["ear.trustworthiness-vector"]["executables"] == 3


def test_veraison_public_key_does_not_verify_our_tokens(vectors: Path, appraised) -> None:
    veraison = JWK.from_json((vectors / "ear/veraison-pkey.json").read_text())
    assert veraison.get("crv") == "P-256" and not veraison.has_private
    with pytest.raises(TokenInvalid, match="signature does not verify with the given key"):
        verify_token(_token(appraised), veraison, now=NOW)


def test_expired_token(appraised) -> None:
    with pytest.raises(TokenInvalid, match=r"token expired at 2025-06-01T12:05:00\+00:00"):
        verify_token(_token(appraised), VERIFIER, now=NOW + timedelta(seconds=300))


def test_token_from_the_future(appraised) -> None:
    with pytest.raises(TokenInvalid, match=r"issued in the future \(iat\)"):
        verify_token(_token(appraised), VERIFIER, now=NOW - timedelta(minutes=2))


def test_tampered_payload(appraised) -> None:
    header, payload, signature = _token(appraised).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["submods"]["kernel"]["ear.status"] = "affirming"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid, match="signature does not verify"):
        verify_token(f"{header}.{forged}.{signature}", VERIFIER, now=NOW)


def _valid_claims(**changes) -> dict:
    iat = int(NOW.timestamp())
    claims = {"eat_profile": EAR_PROFILE, "iat": iat, "exp": iat + 60,
              "ear.verifier-id": {"developer": "d", "build": "b"},
              "submods": {"kernel": {"ear.status": "affirming"}}}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (_valid_claims(eat_profile="tag:github.com,2024:confidential-containers/Trustee"),
         "eat_profile 'tag:github.com,2024:confidential-containers/Trustee' is not"),
        (_valid_claims(exp=None), "token has no exp claim"),
        (_valid_claims(eat_profile=None), "EAR claims lack eat_profile"),
        (_valid_claims(iat="now"), "iat must be an integer"),
        (_valid_claims(submods={}), "EAR claims need at least one submod"),
        (_valid_claims(**{"ear.verifier-id": {"developer": "d"}}),
         "ear.verifier-id must name developer and build"),
        (_valid_claims(submods={"k": {"ear.status": "fine"}}),
         "submod 'k': ear.status 'fine' is not an EAR status"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.trustworthiness-vector": {"speed": 2}}}),
         "submod 'k': unknown trustworthiness claim 'speed'"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.trustworthiness-vector": {"hardware": 300}}}),
         "trustworthiness claim 'hardware' out of range: 300"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.trustworthiness-vector": {"hardware": "2"}}}),
         "trustworthiness claim 'hardware' must be an integer"),
        (_valid_claims(eat_nonce=5), "eat_nonce must be a string"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.appraisal-policy-id": 7}}),
         "ear.appraisal-policy-id must be a string"),
    ],
)
def test_invalid_claims(claims: dict, reason: str) -> None:
    with pytest.raises(TokenInvalid, match=reason):
        verify_token(_sign(claims), VERIFIER, now=NOW)


def test_payload_that_is_not_json() -> None:
    jws = JWS(b"not json")
    jws.add_signature(SIGNER, alg="ES256", protected=json.dumps({"alg": "ES256"}))
    with pytest.raises(TokenInvalid, match="payload is not JSON"):
        verify_token(jws.serialize(compact=True), VERIFIER, now=NOW)


def test_other_algorithms_are_refused() -> None:
    hmac_key = JWK.generate(kty="oct", size=256)
    token = _sign(_valid_claims(), alg="HS256", key=hmac_key)
    with pytest.raises(TokenInvalid, match="algorithm 'HS256' is not ES256"):
        verify_token(token, VERIFIER, now=NOW)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a token"),
        ("a.b", "not a compact JWS"),
        ("a.b.c", "not a JWS"),
        (b"x" * 300_000, "not a token"),
    ],
)
def test_garbage_tokens(token, reason: str) -> None:
    with pytest.raises(TokenInvalid, match=reason):
        verify_token(token, VERIFIER, now=NOW)


def test_keys_must_be_p256(appraised) -> None:
    p384 = JWK.generate(kty="EC", crv="P-384")
    with pytest.raises(ValueError, match="must be an EC P-256 JWK"):
        _token(appraised, signing_key=p384)
    with pytest.raises(ValueError, match="needs the private key"):
        _token(appraised, signing_key=VERIFIER)
    with pytest.raises(ValueError, match="must be an EC P-256 JWK"):
        verify_token("a.b.c", p384)


def test_missing_submod() -> None:
    with pytest.raises(TokenInvalid, match="token has no submod 'kernel'"):
        submod({"submods": {"cpu0": {}}})


@pytest.mark.parametrize(
    ("claim", "value", "text"),
    [
        ("hardware", 2, "genuine (affirming)"),
        ("hardware", 97, "unrecognized (contraindicated)"),
        ("executables", 33, "unrecognized run-time (warning)"),
        ("configuration", 0, "no claim being made (none)"),
        ("file-system", 99, "cryptographic validation failed (contraindicated)"),
        ("sourced-data", 50, "unassigned code 50 (warning)"),
    ],
)
def test_describe_claim(claim: str, value: int, text: str) -> None:
    assert describe_claim(claim, value) == text


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ([1, 2], "EAR claims must be a JSON object"),
        (_valid_claims(submods={"k": []}), "submod 'k' must be an object"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.veraison.annotated-evidence": "text"}}),
         "ear.veraison.annotated-evidence must be an object"),
        (_valid_claims(submods={"k": {"ear.status": "affirming", "ear.workbench.rules": {}}}),
         "ear.workbench.rules must be a list"),
        (_valid_claims(submods={"k": {"ear.status": "affirming",
                                      "ear.trustworthiness-vector": [2]}}),
         "ear.trustworthiness-vector must be an object"),
    ],
)
def test_invalid_claim_shapes(claims, reason: str) -> None:
    with pytest.raises(TokenInvalid, match=reason):
        verify_token(_sign(claims), VERIFIER, now=NOW)


def test_lifetime_must_be_positive(appraised) -> None:
    with pytest.raises(ValueError, match="lifetime_s must be positive"):
        _token(appraised, lifetime_s=0)

"""EAR (EAT Attestation Result, draft-ietf-rats-ear) claim sets, signed as ES256 JWTs.

A token's claims (the shape veraison/ear reads)::

    {
      "eat_profile": "tag:github.com,2023:veraison/ear",
      "iat": 1700000000, "exp": 1700000300, "iss": "<issuer>",
      "eat_nonce": "<the session nonce>",
      "ear.verifier-id": {"developer": "...", "build": "workbench <version>"},
      "submods": {
        "kernel": {
          "ear.status": "affirming" | "warning" | "contraindicated",
          "ear.trustworthiness-vector": {"instance-identity": 2, "hardware": 2, ...},
          "ear.appraisal-policy-id": "<policy id>",
          "ear.veraison.annotated-evidence": {verified evidence: tee, claims, checks, ...},
          "ear.workbench.rules": [every rule: name, passed, expected, actual, reason]
        }
      }
    }

The trustworthiness vector holds AR4SI claims with their integer codes (``CLAIM_CODES``
gives the tag and meaning of each). ``read_claims`` checks the shape of any EAR claim set,
ours or another verifier's, and returns it typed (:class:`EarClaims`, whose submods are
:class:`Submod` values); ``verify_token`` checks signature, expiry and profile and returns
the same. Both keep the raw claims readable by name, for extension claims.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench import __version__
from workbench.attestation.appraise.appraise import TRUST_CLAIMS, Appraisal, EarStatus
from workbench.attestation.verify.result import VerifiedEvidence

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
SIGNING_ALG = "ES256"
SUBMOD = "kernel"
VERIFIER_ID = {"developer": "https://github.com/confidential-workbench", "build": ""}
# Tokens live minutes; anything bigger is not one of ours.
MAX_TOKEN_BYTES = 256 * 1024

# AR4SI trustworthiness claim codes (draft-ietf-rats-ar4si §2.3), as (tag, meaning).
_COMMON = {
    -1: ("verifier_malfunction", "verifier malfunction"),
    0: ("no_claim", "no claim being made"),
    1: ("unexpected_evidence", "unexpected evidence"),
    99: ("crypto_failed", "cryptographic validation failed"),
}
CLAIM_CODES: dict[str, dict[int, tuple[str, str]]] = {
    "instance-identity": {
        2: ("recognized_instance", "recognized and not compromised"),
        96: ("untrustworthy_instance", "recognized but not trustworthy"),
        97: ("unrecognized_instance", "not recognized"),
    },
    "configuration": {
        2: ("approved_config", "all recognized and approved"),
        3: ("safe_config", "no known vulnerabilities"),
        32: ("unsafe_config", "known vulnerabilities"),
        96: ("unsupportable_config", "unacceptable security vulnerabilities"),
    },
    "executables": {
        2: ("approved_rt", "recognized and approved boot- and run-time"),
        3: ("approved_boot", "recognized and approved boot-time"),
        32: ("unsafe_rt", "recognized but known bugs or vulnerabilities"),
        33: ("unrecognized_rt", "unrecognized run-time"),
        96: ("contraindicated_rt", "contraindicated run-time"),
    },
    "file-system": {
        2: ("approved_fs", "all recognized and approved"),
        32: ("unrecognized_fs", "unrecognized item(s) found"),
        96: ("contraindicated_fs", "contraindicated item(s) found"),
    },
    "hardware": {
        2: ("genuine_hw", "genuine"),
        32: ("unsafe_hw", "genuine but known bugs or vulnerabilities"),
        96: ("contraindicated_hw", "genuine but contraindicated"),
        97: ("unrecognized_hw", "unrecognized"),
    },
    "runtime-opaque": {
        2: ("encrypted_rt", "memory encryption"),
        32: ("isolated_rt", "memory isolation"),
        96: ("visible_rt", "visible"),
    },
    "storage-opaque": {
        2: ("hw_encrypted_secrets", "encrypted secrets with HW-backed keys"),
        32: ("sw_encrypted_secrets", "encrypted secrets with non HW-backed keys"),
        96: ("unencrypted_secrets", "unencrypted secrets"),
    },
    "sourced-data": {
        2: ("trusted_sources", "from attesters in the affirming tier"),
        32: ("untrusted_sources", "from unattested sources or attesters in the warning tier"),
        96: ("contraindicated_sources", "from attesters in the contraindicated tier"),
    },
}


class TokenInvalid(Exception):
    """An EAR token or claim set that must not be relied on; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_claim(claim: str, value: int) -> str:
    """A person-readable meaning of one trustworthiness-vector entry."""
    known = {**_COMMON, **CLAIM_CODES.get(claim, {})}
    meaning = known.get(value, (f"code {value}", f"unassigned code {value}"))[1]
    return f"{meaning} ({EarStatus.of_claim(value).value})"


class JsonView(Mapping[str, Any]):
    """Read-only access by name to the JSON of a typed value (``raw``), for code that walks
    it by name (claims of other verifiers, extension claims); typed fields come first."""

    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, eq=False)
class Submod(JsonView):
    """One attester's appraisal in an EAR token."""

    status: EarStatus
    trust_vector: dict[str, int]
    policy_id: str | None
    annotated_evidence: dict[str, Any] | None
    rules: list[dict[str, Any]] | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def rule_list(self) -> list[dict[str, Any]]:
        """The rules that are JSON objects (a foreign token may carry anything)."""
        return [r for r in self.rules or [] if isinstance(r, dict)]

    @property
    def failed_rules(self) -> list[dict[str, Any]]:
        return [r for r in self.rule_list if not r.get("passed")]


@dataclass(frozen=True, eq=False)
class EarClaims(JsonView):
    """A checked EAR claim set; ``raw`` keeps every claim, the broker's extensions too."""

    profile: str
    iat: int
    verifier_id: dict[str, str]
    submods: dict[str, Submod]
    nonce: str | None
    exp: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def issuer(self) -> str | None:
        issuer = self.raw.get("iss")
        return issuer if isinstance(issuer, str) else None

    def submod(self, name: str = SUBMOD) -> Submod:
        try:
            return self.submods[name]
        except KeyError:
            raise TokenInvalid(f"token has no submod '{name}'") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenInvalid(f"{what} must be an integer")
    return value


def _read_vector(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise TokenInvalid(f"{where}: ear.trustworthiness-vector must be an object")
    vector = {}
    for claim, code in value.items():
        if claim not in TRUST_CLAIMS:
            raise TokenInvalid(f"{where}: unknown trustworthiness claim '{claim}'")
        code = _int(code, f"{where}: trustworthiness claim '{claim}'")
        if not -128 <= code <= 127:
            raise TokenInvalid(f"{where}: trustworthiness claim '{claim}' out of range: {code}")
        vector[claim] = code
    return vector


def _read_submod(name: str, value: Any) -> Submod:
    where = f"submod '{name}'"
    if not isinstance(value, dict):
        raise TokenInvalid(f"{where} must be an object")
    try:
        status = EarStatus(value.get("ear.status"))
    except ValueError:
        raise TokenInvalid(f"{where}: ear.status {value.get('ear.status')!r} is not an EAR "
                           "status") from None
    vector = _read_vector(value.get("ear.trustworthiness-vector", {}), where)
    policy_id = value.get("ear.appraisal-policy-id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise TokenInvalid(f"{where}: ear.appraisal-policy-id must be a string")
    evidence = value.get("ear.veraison.annotated-evidence")
    if evidence is not None and not isinstance(evidence, dict):
        raise TokenInvalid(f"{where}: ear.veraison.annotated-evidence must be an object")
    rules = value.get("ear.workbench.rules")
    if rules is not None and not isinstance(rules, list):
        raise TokenInvalid(f"{where}: ear.workbench.rules must be a list")
    return Submod(status, vector, policy_id, evidence, rules, raw=value)


def read_claims(claims: Any) -> EarClaims:
    """Check the shape of an EAR claim set (any verifier's) and return it typed."""
    if isinstance(claims, EarClaims):
        return claims
    if not isinstance(claims, dict):
        raise TokenInvalid("EAR claims must be a JSON object")
    profile = claims.get("eat_profile")
    if not isinstance(profile, str) or not profile:
        raise TokenInvalid("EAR claims lack eat_profile")
    iat = _int(claims.get("iat"), "iat")
    verifier = claims.get("ear.verifier-id")
    if not isinstance(verifier, dict) or not all(
        isinstance(verifier.get(k), str) for k in ("developer", "build")
    ):
        raise TokenInvalid("ear.verifier-id must name developer and build")
    submods = claims.get("submods")
    if not isinstance(submods, dict) or not submods:
        raise TokenInvalid("EAR claims need at least one submod")
    nonce = claims.get("eat_nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise TokenInvalid("eat_nonce must be a string")
    exp = claims.get("exp")
    return EarClaims(
        profile=profile,
        iat=iat,
        verifier_id=dict(verifier),
        submods={name: _read_submod(name, value) for name, value in submods.items()},
        nonce=nonce,
        exp=None if exp is None else _int(exp, "exp"),
        raw=claims,
    )


def build_claims(
    appraisal: Appraisal,
    evidence: VerifiedEvidence,
    *,
    issuer: str,
    nonce: str,
    iat: int,
    lifetime_s: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    submod = {
        "ear.status": appraisal.status.value,
        "ear.trustworthiness-vector": dict(appraisal.trust_vector),
        "ear.appraisal-policy-id": appraisal.policy_id,
        "ear.veraison.annotated-evidence": evidence.to_json(),
        "ear.workbench.rules": [r.to_json() for r in appraisal.rules],
    }
    claims: dict[str, Any] = {
        **(extra or {}),
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "exp": iat + lifetime_s,
        "iss": issuer,
        "eat_nonce": nonce,
        "ear.verifier-id": {**VERIFIER_ID, "build": f"workbench {__version__}"},
        "submods": {SUBMOD: submod},
    }
    return claims


def _require_es256(key: JWK, private: bool) -> None:
    if not isinstance(key, JWK) or key.get("kty") != "EC" or key.get("crv") != "P-256":
        raise ValueError("EAR tokens are signed with ES256: the key must be an EC P-256 JWK")
    if private and not key.has_private:
        raise ValueError("signing an EAR token needs the private key")


def issue_token(
    appraisal: Appraisal,
    evidence: VerifiedEvidence,
    *,
    signing_key: JWK,
    issuer: str,
    nonce: str,
    lifetime_s: int = 300,
    extra: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """Sign the appraisal as an EAR JWT (ES256); ``extra`` claims never override EAR's own."""
    _require_es256(signing_key, private=True)
    if lifetime_s <= 0:
        raise ValueError("lifetime_s must be positive")
    iat = int((now or datetime.now(UTC)).timestamp())
    claims = build_claims(appraisal, evidence, issuer=issuer, nonce=nonce, iat=iat,
                          lifetime_s=lifetime_s, extra=extra)
    header = {"alg": SIGNING_ALG, "typ": "JWT", "kid": signing_key.thumbprint()}
    jws = JWS(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    jws.add_signature(signing_key, alg=SIGNING_ALG, protected=json.dumps(header))
    return jws.serialize(compact=True)


def verify_token(
    token: str | bytes, public_key: JWK, *, now: datetime | None = None
) -> EarClaims:
    """Return the claims of a valid token; raise TokenInvalid(reason) for anything else."""
    _require_es256(public_key, private=False)
    if isinstance(token, bytes):
        token = token.decode("ascii", errors="replace")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid("not a token (empty or oversized)")
    if token.count(".") != 2:
        raise TokenInvalid("not a compact JWS (expected three dot-separated parts)")
    jws = JWS()
    try:
        jws.deserialize(token)
    except JWException as err:
        raise TokenInvalid(f"not a JWS ({err})") from None
    header = jws.jose_header
    if header.get("alg") != SIGNING_ALG:
        raise TokenInvalid(f"algorithm {header.get('alg')!r} is not {SIGNING_ALG}")
    try:
        jws.verify(public_key, alg=SIGNING_ALG)
    except JWException:
        raise TokenInvalid("signature does not verify with the given key") from None
    try:
        claims = json.loads(jws.payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise TokenInvalid(f"payload is not JSON ({err})") from None
    ear = read_claims(claims)
    if ear.profile != EAR_PROFILE:
        raise TokenInvalid(f"eat_profile {ear.profile!r} is not {EAR_PROFILE!r}")
    if ear.exp is None:
        raise TokenInvalid("token has no exp claim")
    moment = int((now or datetime.now(UTC)).timestamp())
    if moment >= ear.exp:
        raise TokenInvalid(
            f"token expired at {datetime.fromtimestamp(ear.exp, UTC).isoformat()}"
        )
    if ear.iat > moment + 60:
        raise TokenInvalid("token is issued in the future (iat)")
    return ear


def submod(claims: EarClaims | dict[str, Any], name: str = SUBMOD) -> Submod:
    """The appraisal of one attester in a verified token (our tokens have one: ``kernel``)."""
    if isinstance(claims, EarClaims):
        return claims.submod(name)
    try:
        value = claims["submods"][name]
    except (KeyError, TypeError):
        raise TokenInvalid(f"token has no submod '{name}'") from None
    return _read_submod(name, value)

"""Release by analyst: the policy's ``analysts`` / ``analyst_groups``, and signed approvals.

A policy that names analysts releases only to a sealed session certified by one of them
(``workbench.kbs.analysts``), judged at each release so that a revocation takes effect at
once; and only on an approval signed by that session (the session's signing key, named in
the certificate, over the request id, the resource, the kernel's key and the hash of the
token the analyst was shown). Failed rules have the shape of appraisal rules (name,
expected, actual, reason), so every client shows them alike.
"""

from __future__ import annotations

from typing import Any

from workbench.attestation.appraise import Policy
from workbench.kbs.analysts import REGISTERED, Analysts, Standing
from workbench.kbs.records import Session
from workbench.sealed.certificate import approval_message, thumbprint, verify
from workbench.sealed.keys import key_from_point


def _rule(name: str, expected: Any, actual: Any, reason: str) -> dict[str, Any]:
    return {"name": name, "expected": expected, "actual": actual, "reason": reason}


def standing(session: Session, analysts: Analysts) -> Standing:
    return analysts.standing(session.certificate, session_key=session.session_key.hex(),
                             kernel_key=thumbprint(session.tee_pubkey))


def analyst_failed(policy: Policy, now_standing: Standing) -> list[dict[str, Any]]:
    """The ``analyst`` rule: the session's certifier is registered, current and listed."""
    if not policy.names_analysts:
        return []
    expected = {"analysts": list(policy.analysts), "analyst_groups": list(policy.analyst_groups)}
    if now_standing.standing != REGISTERED or now_standing.analyst is None:
        return [_rule("analyst", expected, now_standing.standing,
                      f"releases of this resource are restricted to registered analysts: "
                      f"{now_standing.reason}")]
    analyst = now_standing.analyst
    if analyst.name in policy.analysts or set(analyst.groups) & set(policy.analyst_groups):
        return []
    return [_rule("analyst", expected, analyst.name,
                  f"analyst {analyst.name} (groups {', '.join(analyst.groups) or 'none'}) is "
                  f"not listed: the policy allows analysts "
                  f"[{', '.join(policy.analysts)}] and groups "
                  f"[{', '.join(policy.analyst_groups)}]")]


def signed_approval(session: Session, resource: str, approval: dict[str, str] | None
                    ) -> str | None:
    """Why ``approval`` is not the certified session's signature for this release, or
    None when it is."""
    if session.certificate is None:
        return "the session is not certified, so no approval can be signed by it"
    if approval is None or approval.get("mode") != "sealed":
        return "no sealed approval was presented"
    signature, request = approval.get("signature", ""), approval.get("request", "")
    if not signature or not request:
        return "the approval is not signed (a certified session's approval carries the " \
               "session's signature and its request id)"
    message = approval_message(request, resource, thumbprint(session.tee_pubkey),
                               session.token_sha256)
    try:
        key = key_from_point(bytes.fromhex(session.certificate.signing_key))
    except ValueError as err:
        # Attest refuses such a certificate now; a session stored by an older broker may not.
        return f"the session certificate's signing_key is not a P-256 public key: {err}"
    if not verify(key, signature, message):
        return (f"the approval's signature does not verify under the session's signing key "
                f"for request {request[:40]} of {resource}: forged, or for another release")
    return None

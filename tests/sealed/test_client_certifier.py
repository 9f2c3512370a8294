"""The analyst's client refuses a kernel whose token names another certifier than its own.

The ``lock`` crosses the relay in the clear, certificate and all. A relay colluding with
another registered analyst (bob) can swap alice's certificate for one bob signs over alice's
own session and signing keys; the kernel cannot tell, and the broker would name bob and
release bob's data to alice's session. Alice's client can: the token must name her analyst
key and its evidence must bind her certificate's digest. Each way the relay can change the
certificate is refused with its reason, before anything sealed is sent.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.client.sealed import SealedSessionError
from workbench.sealed.certificate import (
    COORDINATE,
    SessionCertificate,
    certify,
    fingerprint,
    jwk_of,
)
from workbench.sealed.keys import key_from_point

# The order of the P-256 group: (r, n - s) verifies wherever (r, s) does.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
Certificate = dict[str, Any] | None


def _keys() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _register(site: Any, *keys: ec.EllipticCurvePrivateKey) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    names = [f"{who}-{tag}" for who in ("alice", "bob")[:len(keys)]]
    with site.admin() as admin:
        for name, key in zip(names, keys, strict=True):
            admin.add_analyst(name, jwk_of(key.public_key()), [])
    return names


def _lock_through(session: Any, change: Callable[[Certificate], Certificate]) -> None:
    """Lock ``session`` through a relay that passes its lock's certificate through
    ``change`` (None: the lock carries none)."""
    channel = session.client.shell_channel
    real_send = channel.send

    def relayed(msg: dict[str, Any]) -> Any:
        data = msg["content"].get("data") or {}
        if msg["msg_type"] == "comm_msg" and data.get("type") == "lock":
            changed = change(data.pop("certificate", None))
            if changed is not None:
                data["certificate"] = changed
        return real_send(msg)

    channel.send = relayed
    session.lock()


def _bob_signs(bob: ec.EllipticCurvePrivateKey, session: Any
               ) -> Callable[[Certificate], Certificate]:
    """Bob's certificate over the session and signing keys the plain lock shows."""
    def change(theirs: Certificate) -> Certificate:
        if theirs is None:  # an uncertified lock: bob certifies its session key
            point = bytes.fromhex(session.session_key.hex())
            return certify(bob, key_from_point(point), key_from_point(point),
                           session._kernel_jwk).to_json()
        certificate = SessionCertificate.from_json(theirs)
        return certify(bob, key_from_point(bytes.fromhex(certificate.session_key)),
                       key_from_point(bytes.fromhex(certificate.signing_key)),
                       session._kernel_jwk).to_json()
    return change


def test_a_swapped_certificate_is_refused(site, kernel, tmp_path: Path) -> None:
    alice_key, bob_key = _keys(), _keys()
    _alice, bob = _register(site, alice_key, bob_key)
    session = kernel().analyst(tmp_path, analyst_key=alice_key, approve=True)
    with pytest.raises(SealedSessionError) as refused:
        _lock_through(session, _bob_signs(bob_key, session))
    assert str(refused.value) == (
        f"refusing the kernel: the token names analyst {bob} (key "
        f"{fingerprint(jwk_of(bob_key.public_key()))}) as the session's certifier, not this "
        f"client's analyst key {fingerprint(jwk_of(alice_key.public_key()))} "
        "(workbench.analyst): the lock's certificate was swapped on the way")
    assert session.lock_info is None
    with pytest.raises(SealedSessionError, match="call lock"):
        session.execute("1")


def test_a_certificate_added_to_an_uncertified_lock_is_refused(site, kernel,
                                                               tmp_path: Path) -> None:
    bob_key = _keys()
    (bob,) = _register(site, bob_key)
    session = kernel().analyst(tmp_path, approve=True)  # no analyst key: certifies nothing
    with pytest.raises(SealedSessionError) as refused:
        _lock_through(session, _bob_signs(bob_key, session))
    assert str(refused.value) == (
        f"refusing the kernel: the token says the session was certified by analyst {bob} "
        f"(key {fingerprint(jwk_of(bob_key.public_key()))}), but this client certified "
        "none (workbench.analyst): a certificate was added to the lock on the way")


def test_a_dropped_certificate_is_refused(kernel, tmp_path: Path) -> None:
    alice_key = _keys()
    session = kernel().analyst(tmp_path, analyst_key=alice_key)
    with pytest.raises(SealedSessionError) as refused:
        _lock_through(session, lambda _theirs: None)
    assert str(refused.value) == (
        "refusing the kernel: the token names no analyst (workbench.analyst), but this "
        f"client certified the session with analyst key "
        f"{fingerprint(jwk_of(alice_key.public_key()))}: the certificate was dropped from "
        "the lock on the way")


def test_another_certificate_of_the_same_analyst_is_refused(kernel, tmp_path: Path) -> None:
    """ECDSA signatures are malleable: the relay makes another valid certificate of alice's
    from hers (s -> n - s). Same analyst, other digest: the binding tells them apart."""
    alice_key = _keys()
    session = kernel().analyst(tmp_path, analyst_key=alice_key)

    def malleate(theirs: Certificate) -> Certificate:
        assert theirs is not None
        raw = base64.urlsafe_b64decode(theirs["signature"] + "==")
        s = int.from_bytes(raw[COORDINATE:], "big")
        other = raw[:COORDINATE] + (P256_ORDER - s).to_bytes(COORDINATE, "big")
        return {**theirs, "signature": base64.urlsafe_b64encode(other).decode().rstrip("=")}

    with pytest.raises(SealedSessionError) as refused:
        _lock_through(session, malleate)
    assert str(refused.value) == (
        "refusing the kernel: the token's evidence binds another session certificate than "
        f"this client's (SHA-256 {session._certificate.digest().hex()[:16]}...): the lock's "
        "certificate was replaced on the way")


def test_the_analysts_own_certificate_locks(site, kernel, tmp_path: Path) -> None:
    alice_key = _keys()
    (alice,) = _register(site, alice_key)
    session = kernel().analyst(tmp_path, analyst_key=alice_key)
    lock = session.lock()
    assert lock.claims.get("workbench.analyst") == {
        "fingerprint": fingerprint(jwk_of(alice_key.public_key())), "name": alice,
        "standing": "registered"}

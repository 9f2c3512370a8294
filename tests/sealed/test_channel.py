"""The sealed channel: what one end seals only the other end of the same session opens,
once, in order; every refusal names its reason and leaves the channel usable."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from workbench.sealed import Direction, Lane, SealedChannel, SealedEnvelope, SealRefused
from workbench.sealed.channel import session_fingerprint

SHELL, IOPUB = Lane.SHELL, Lane.IOPUB


def _pair() -> tuple[SealedChannel, SealedChannel, ec.EllipticCurvePrivateKey,
                     ec.EllipticCurvePrivateKey]:
    frontend_key = ec.generate_private_key(ec.SECP256R1())
    kernel_key = ec.generate_private_key(ec.SECP256R1())
    frontend = SealedChannel(frontend_key, kernel_key.public_key(), Direction.TO_KERNEL)
    kernel = SealedChannel(kernel_key, frontend_key.public_key(), Direction.TO_FRONTEND)
    return frontend, kernel, frontend_key, kernel_key


def _refused(channel: SealedChannel, envelope: SealedEnvelope) -> str:
    with pytest.raises(SealRefused) as refused:
        channel.open(envelope)
    return refused.value.kind


def test_both_directions_round_trip_in_order() -> None:
    frontend, kernel, *_ = _pair()
    assert frontend.fingerprint == kernel.fingerprint
    for i in range(3):
        sent = frontend.seal(f"print({i})".encode(), SHELL)
        assert sent.counter == i and sent.direction is Direction.TO_KERNEL
        assert kernel.open(SealedEnvelope.from_json(json.loads(json.dumps(sent.to_json())))) \
            == f"print({i})".encode()
        assert frontend.open(kernel.seal(b"output %d" % i, IOPUB)) == b"output %d" % i


def test_ciphertext_hides_the_plaintext() -> None:
    frontend, *_ = _pair()
    secret = b"Jane Doe, MRN 0012345"
    envelope = frontend.seal(secret, SHELL)
    assert secret not in envelope.ciphertext and secret not in json.dumps(
        envelope.to_json()).encode()


def test_replay_is_refused_and_the_channel_goes_on() -> None:
    frontend, kernel, *_ = _pair()
    first = frontend.seal(b"a", SHELL)
    kernel.open(first)
    assert _refused(kernel, first) == "replayed"
    assert kernel.open(frontend.seal(b"b", SHELL)) == b"b"


def test_reorder_and_drop_then_resend_are_refused() -> None:
    frontend, kernel, *_ = _pair()
    m0, m1, m2 = (frontend.seal(b"%d" % i, SHELL) for i in range(3))
    # m0 held back by a relay: m1 arrives first and is refused, it is not queued.
    assert _refused(kernel, m1) == "out-of-order"
    assert _refused(kernel, m2) == "out-of-order"
    # What the receiver accepts is always a prefix of what was sent, in order.
    assert [kernel.open(m) for m in (m0, m1, m2)] == [b"0", b"1", b"2"]
    assert _refused(kernel, m0) == "replayed"


def test_a_message_of_another_session_is_refused() -> None:
    frontend, kernel, *_ = _pair()
    other_frontend, _other_kernel, *_ = _pair()
    foreign = other_frontend.seal(b"import os", SHELL)
    assert _refused(kernel, foreign) == "other-session"
    # Relabelled as ours, it still does not authenticate under our keys.
    spliced = SealedEnvelope(kernel.fingerprint, foreign.direction, foreign.lane, foreign.counter,
                             foreign.ciphertext)
    assert _refused(kernel, spliced) == "tampered"
    assert kernel.open(frontend.seal(b"ok", SHELL)) == b"ok"


@pytest.mark.parametrize("where", [0, 7, -17, -1])
def test_a_flipped_byte_is_refused(where: int) -> None:
    frontend, kernel, *_ = _pair()
    envelope = frontend.seal(b"x = 1", SHELL)
    flipped = bytearray(envelope.ciphertext)
    flipped[where] ^= 0x01
    bad = SealedEnvelope(envelope.session, envelope.direction, envelope.lane,
                         envelope.counter,
                         bytes(flipped))
    assert _refused(kernel, bad) == "tampered"
    assert kernel.open(envelope) == b"x = 1"


def test_a_reflected_message_is_refused() -> None:
    frontend, kernel, *_ = _pair()
    to_kernel = frontend.seal(b"code", SHELL)
    assert _refused(frontend, to_kernel) == "wrong-direction"
    # Even with its direction label changed, the other direction's key does not open it.
    relabelled = SealedEnvelope(to_kernel.session, Direction.TO_FRONTEND, SHELL, 0,
                                to_kernel.ciphertext)
    assert _refused(frontend, relabelled) == "tampered"
    assert kernel.open(to_kernel) == b"code"


@pytest.mark.parametrize(("change", "why"), [
    ({"v": 2}, "version"),
    ({"counter": -1}, "counter"),
    ({"counter": True}, "counter"),
    ({"counter": 2**64}, "counter"),
    ({"direction": "sideways"}, "direction"),
    ({"lane": "control"}, "lane"),
    ({"ciphertext": "not base64!"}, "base64"),
    ({"session": 5}, "session"),
    ({"extra": 1}, "exactly the members"),
])
def test_malformed_envelopes_are_refused_by_name(change: dict, why: str) -> None:
    frontend, *_ = _pair()
    document = {**frontend.seal(b"x", SHELL).to_json(), **change}
    with pytest.raises(SealRefused) as refused:
        SealedEnvelope.from_json(document)
    assert refused.value.kind == "malformed" and why in str(refused.value)


def test_the_construction_as_documented() -> None:
    """docs/sealed-sessions.md, re-derived here without the module: what a browser's
    WebCrypto implementation must compute."""
    frontend, _kernel, frontend_key, kernel_key = _pair()
    envelope = frontend.seal(b"2 + 2", SHELL)
    points = [k.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
              for k in (frontend_key, kernel_key)]
    fingerprint = hashlib.sha256(points[0] + points[1]).hexdigest()
    assert fingerprint == envelope.session == session_fingerprint(
        frontend_key.public_key(), kernel_key.public_key())
    shared = kernel_key.exchange(ec.ECDH(), frontend_key.public_key())
    salt = hashlib.sha256(b"workbench sealed session v1" + bytes.fromhex(fingerprint)).digest()
    key = HKDF(hashes.SHA256(), 32, salt, b"workbench sealed to-kernel shell").derive(shared)
    aad = json.dumps({"counter": 0, "direction": "to-kernel", "lane": "shell",
                      "session": fingerprint, "v": 1},
                     separators=(",", ":")).encode()
    nonce = bytes(4) + (0).to_bytes(8, "big")
    assert AESGCM(key).decrypt(nonce, envelope.ciphertext, aad) == b"2 + 2"


def test_only_p256_keys() -> None:
    own = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        SealedChannel(own, ec.generate_private_key(ec.SECP384R1()).public_key(),
                      Direction.TO_KERNEL)


def test_lanes_count_apart_and_do_not_open_each_other() -> None:
    frontend, kernel, *_ = _pair()
    execute = frontend.seal(b"run", SHELL)
    approval = frontend.seal(b"approve", Lane.COMM)
    # The comm subshell may take its message before a queued execute: both open.
    assert kernel.open(approval) == b"approve" and kernel.open(execute) == b"run"
    moved = SealedEnvelope(execute.session, execute.direction, Lane.COMM, 1,
                           frontend.seal(b"x", SHELL).ciphertext)
    assert _refused(kernel, moved) == "tampered"


def test_kernel_output_skips_a_dropped_message_but_never_takes_it_back() -> None:
    frontend, kernel, *_ = _pair()
    m0, m1, m2 = (kernel.seal(b"out %d" % i, IOPUB) for i in range(3))
    assert frontend.open(m0) == b"out 0"
    # Jupyter dropped m1 (output rate limit): m2 still opens, the gap is counted.
    assert frontend.open(m2) == b"out 2" and frontend.dropped[IOPUB] == 1
    assert _refused(frontend, m1) == "replayed"
    assert _refused(frontend, m2) == "replayed"
    # Requests to the kernel have no such leniency.
    r0, r1 = frontend.seal(b"a", SHELL), frontend.seal(b"b", SHELL)
    assert _refused(kernel, r1) == "out-of-order"
    assert [kernel.open(r0), kernel.open(r1)] == [b"a", b"b"]

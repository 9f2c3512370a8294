"""The browser's sealed channel (extensions/src/sealedChannel.ts) and workbench.sealed.channel
compute the same bytes: both are held to one committed vector,
extensions/src/__tests__/sealedVector.json. This test rebuilds the keys from the vector and
checks that the Python channel seals exactly its envelopes and refuses its refusals with
the same kinds; the jest test sealedChannel.spec.ts checks the same of the browser's.

Regenerate (deterministic, so an unchanged channel writes the same file):

    .venv/bin/python tests/sealed/test_browser_vector.py --write
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.sealed import Direction, Lane, SealedChannel, SealedEnvelope, SealRefused

VECTOR = Path(__file__).resolve().parents[2] / "extensions" / "src" / "__tests__" / \
    "sealedVector.json"

# Fixed private scalars (SHA-256 of a label, reduced into the curve's range), so the
# vector is reproducible. Test keys only: they protect nothing.
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _scalar(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (_ORDER - 1) + 1


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()
    public = numbers.public_numbers
    return {"kty": "EC", "crv": "P-256", "x": _b64url(public.x.to_bytes(32, "big")),
            "y": _b64url(public.y.to_bytes(32, "big")),
            "d": _b64url(numbers.private_value.to_bytes(32, "big"))}


def _key(hex_scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


# What each end seals, in order: (sender, lane, plaintext). Plaintexts are what
# workbench/sealed/messages.py makes of Jupyter messages (one with non-ASCII text, raw).
MESSAGES: list[tuple[str, str, str]] = [
    ("to-kernel", "shell", '{"msg_type":"execute_request","content":{"code":"2 + 2",'
                           '"silent":false}}'),
    ("to-kernel", "shell", '{"msg_type":"execute_request","content":{"code":"print(\'é\')"}}'),
    ("to-kernel", "comm", '{"msg_type":"comm_msg","content":{"comm_id":"c1","data":'
                          '{"type":"hello","v":1,"client":"jupyterlab"}}}'),
    ("to-kernel", "stdin", '{"msg_type":"input_reply","content":{"status":"ok",'
                           '"value":"yes"}}'),
    ("to-frontend", "iopub", '{"msg_type":"comm_msg","content":{"comm_id":"c1","data":'
                             '{"type":"locked","v":1}}}'),
    ("to-frontend", "iopub", '{"msg_type":"stream","content":{"name":"stdout",'
                             '"text":"4\\n"}}'),
    ("to-frontend", "iopub", '{"msg_type":"execute_result","content":{"data":'
                             '{"text/plain":"4"},"metadata":{},"execution_count":1}}'),
    ("to-frontend", "shell", '{"msg_type":"execute_reply","content":{"status":"ok",'
                             '"execution_count":1}}'),
    ("to-frontend", "stdin", '{"msg_type":"input_request","content":{"prompt":"ok? ",'
                             '"password":false}}'),
]


def _channels(vector: dict[str, Any]) -> tuple[SealedChannel, SealedChannel]:
    frontend_key = _key(vector["frontend"]["private"])
    kernel_key = _key(vector["kernel"]["private"])
    frontend = SealedChannel(frontend_key, kernel_key.public_key(), Direction.TO_KERNEL)
    kernel = SealedChannel(kernel_key, frontend_key.public_key(), Direction.TO_FRONTEND)
    return frontend, kernel


def _refusals(messages: list[dict[str, Any]], other_session: str) -> list[dict[str, Any]]:
    """Cases for a fresh receiver: open ``first`` (indices into messages), then ``envelope``
    must be refused as ``kind``; ``then`` (indices) must still open afterwards."""
    env = [m["envelope"] for m in messages]

    def changed(i: int, **members: Any) -> dict[str, Any]:
        return {**copy.deepcopy(env[i]), **members}

    flipped = bytearray(base64.b64decode(env[5]["ciphertext"]))
    flipped[3] ^= 0x01
    extra = changed(0)
    extra["extra"] = 1
    return [
        {"name": "replayed", "receiver": "kernel", "first": [0], "envelope": env[0],
         "kind": "replayed", "then": [1]},
        {"name": "out-of-order", "receiver": "kernel", "first": [], "envelope": env[1],
         "kind": "out-of-order", "then": [0, 1]},
        {"name": "iopub skips a dropped message, never takes it back", "receiver": "frontend",
         "first": [4, 6], "envelope": env[5], "kind": "replayed", "then": [7], "dropped": 1},
        {"name": "tampered", "receiver": "frontend", "first": [4],
         "envelope": changed(5, ciphertext=base64.b64encode(bytes(flipped)).decode()),
         "kind": "tampered", "then": [5]},
        {"name": "wrong-direction", "receiver": "frontend", "first": [], "envelope": env[0],
         "kind": "wrong-direction", "then": [4]},
        {"name": "relabelled direction", "receiver": "frontend", "first": [],
         "envelope": changed(0, direction="to-frontend"), "kind": "tampered", "then": [7]},
        {"name": "other-session", "receiver": "kernel", "first": [],
         "envelope": changed(0, session=other_session), "kind": "other-session",
         "then": [0]},
        {"name": "moved to another lane", "receiver": "kernel", "first": [],
         "envelope": changed(2, lane="shell"), "kind": "tampered", "then": [0]},
        {"name": "extra member", "receiver": "kernel", "first": [], "envelope": extra,
         "kind": "malformed", "then": [0]},
        {"name": "version", "receiver": "kernel", "first": [], "envelope": changed(0, v=2),
         "kind": "malformed", "then": [0]},
        {"name": "negative counter", "receiver": "kernel", "first": [],
         "envelope": changed(0, counter=-1), "kind": "malformed", "then": [0]},
        {"name": "boolean counter", "receiver": "kernel", "first": [],
         "envelope": changed(0, counter=True), "kind": "malformed", "then": [0]},
        {"name": "unknown lane", "receiver": "kernel", "first": [],
         "envelope": changed(0, lane="control"), "kind": "malformed", "then": [0]},
        {"name": "not base64", "receiver": "kernel", "first": [],
         "envelope": changed(0, ciphertext="not base64!"), "kind": "malformed", "then": [0]},
        {"name": "session not a string", "receiver": "kernel", "first": [],
         "envelope": changed(0, session=5), "kind": "malformed", "then": [0]},
    ]


def build() -> dict[str, Any]:
    """The vector, from the fixed keys and MESSAGES, sealed by workbench.sealed.channel."""
    keys = {name: _scalar(f"workbench sealed browser vector {name}")
            for name in ("frontend", "kernel", "other")}
    vector: dict[str, Any] = {
        "about": "generated by tests/sealed/test_browser_vector.py; checked by it and by "
                 "extensions/src/__tests__/sealedChannel.spec.ts",
    }
    for name in ("frontend", "kernel"):
        key = ec.derive_private_key(keys[name], ec.SECP256R1())
        vector[name] = {"private": f"{keys[name]:064x}", "jwk": _jwk(key),
                        "point": key.public_key().public_bytes(
                            *_point_format()).hex()}
    frontend, kernel = _channels(vector)
    vector["fingerprint"] = frontend.fingerprint
    messages = []
    for sender, lane, text in MESSAGES:
        channel = frontend if sender == "to-kernel" else kernel
        envelope = channel.seal(text.encode("utf-8"), Lane(lane)).to_json()
        messages.append({"direction": sender, "lane": lane, "plaintext": text,
                         "envelope": envelope})
    vector["messages"] = messages
    other = ec.derive_private_key(keys["other"], ec.SECP256R1())
    other_session = SealedChannel(other, _key(vector["kernel"]["private"]).public_key(),
                                  Direction.TO_KERNEL).fingerprint
    vector["refusals"] = _refusals(messages, other_session)
    return vector


def _point_format() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return Encoding.X962, PublicFormat.UncompressedPoint


def _load() -> dict[str, Any]:
    return json.loads(VECTOR.read_text(encoding="utf-8"))


def test_the_committed_vector_is_what_the_channel_computes() -> None:
    """Same keys, same plaintexts, same order: byte-identical envelopes (AES-GCM with a
    counter nonce is deterministic), and the refusal cases unchanged."""
    assert _load() == build()


def test_the_python_channel_opens_the_vector() -> None:
    vector = _load()
    frontend, kernel = _channels(vector)
    assert frontend.fingerprint == vector["fingerprint"]
    for message in vector["messages"]:
        receiver = kernel if message["direction"] == "to-kernel" else frontend
        envelope = SealedEnvelope.from_json(message["envelope"])
        assert receiver.open(envelope) == message["plaintext"].encode("utf-8")


@pytest.mark.parametrize("case", _load()["refusals"] if VECTOR.exists() else [],
                         ids=lambda case: case["name"])
def test_the_python_channel_refuses_as_the_vector_says(case: dict[str, Any]) -> None:
    vector = _load()
    messages = vector["messages"]
    frontend, kernel = _channels(vector)
    receiver = kernel if case["receiver"] == "kernel" else frontend
    for i in case["first"]:
        receiver.open(SealedEnvelope.from_json(messages[i]["envelope"]))
    with pytest.raises(SealRefused) as refused:
        receiver.open(SealedEnvelope.from_json(case["envelope"]))
    assert refused.value.kind == case["kind"]
    for i in case["then"]:
        assert receiver.open(SealedEnvelope.from_json(messages[i]["envelope"])) == \
            messages[i]["plaintext"].encode("utf-8")
    if "dropped" in case:
        assert receiver.dropped[Lane.IOPUB] == case["dropped"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_browser_vector.py --write  (rewrites " + str(VECTOR) + ")")
    VECTOR.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n",
                      encoding="utf-8")
    print(f"wrote {VECTOR}")

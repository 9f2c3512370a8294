"""One sealed session between a frontend's session key and the kernel's attested key.

Both ends hold an EC P-256 key pair: the frontend its session key (never exported), the
kernel its ephemeral key, the one the broker's token binds. ECDH between them, then
HKDF-SHA256, gives one AES-256-GCM key per direction and lane. A lane is one ordered path
of Jupyter's (the shell channel, the stdin channel, the comm subshell, IOPub): messages of
different lanes may overtake each other on the way, messages of one lane never do. Every
message carries its position in its lane (a counter from 0); the nonce is that counter and
the associated data binds the protocol version, the direction, the lane, the counter and
the session's fingerprint. A receiver accepts exactly the next counter of a lane (IOPub,
which Jupyter may drop under load, accepts a later one and counts the gap), so a replayed,
reordered or dropped-then-resent message is refused, a message of another session fails
authentication, and a refused message changes nothing: the next genuine one is still
accepted.

Every primitive is ``cryptography``'s; the browser does the same with WebCrypto
(ECDH deriveBits, HKDF, AES-GCM), so both derive the same keys from the same inputs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from workbench.errors import WorkbenchError

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
# The counter fills the nonce's last 8 bytes; a session never sends 2**64 messages.
MAX_COUNTER = 2**64 - 1
HKDF_SALT_LABEL = b"workbench sealed session v1"
# Largest sealed message accepted, before any cryptography (a 50 MB output is streamed in
# many messages; one message above this is refused outright).
MAX_CIPHERTEXT_BYTES = 64 * 1024 * 1024


class Direction(StrEnum):
    TO_KERNEL = "to-kernel"
    TO_FRONTEND = "to-frontend"



class Lane(StrEnum):
    """An ordered path of Jupyter's; each direction and lane has its own key and counter."""

    SHELL = "shell"    # execute, complete, inspect, history requests and their replies
    COMM = "comm"      # comm messages to the kernel (handled on the kernel's comm subshell)
    STDIN = "stdin"    # input requests and replies
    IOPUB = "iopub"    # outputs and the kernel's comm messages


# Lanes Jupyter may drop messages on (IOPub is a PUB socket, and the Jupyter server drops
# output over its rate limits): the receiver accepts a later counter and counts the gap.
LOSSY = frozenset({(Direction.TO_FRONTEND, Lane.IOPUB)})


def _info(direction: Direction, lane: Lane) -> bytes:
    return f"workbench sealed {direction.value} {lane.value}".encode()


class SealRefused(WorkbenchError):
    """A sealed message that must not be acted on; ``kind`` names why, for tests and logs."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SealedEnvelope:
    """A sealed message as it travels: version, session, direction, counter, ciphertext."""

    session: str
    direction: Direction
    lane: Lane
    counter: int
    ciphertext: bytes
    v: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return {"v": self.v, "session": self.session, "direction": self.direction.value,
                "lane": self.lane.value, "counter": self.counter,
                "ciphertext": base64.b64encode(self.ciphertext).decode("ascii")}

    @classmethod
    def from_json(cls, value: Any) -> SealedEnvelope:
        """Parse strictly: every member present and of its type, nothing else."""
        expected = {"v", "session", "direction", "lane", "counter", "ciphertext"}
        if not isinstance(value, dict) or set(value) != expected:
            raise SealRefused("malformed", "a sealed message has exactly the members "
                                           f"{', '.join(sorted(expected))}")
        if value["v"] != VERSION:
            raise SealRefused("malformed", f"sealed message version {value['v']!r} is not "
                                           f"{VERSION}")
        counter = value["counter"]
        if isinstance(counter, bool) or not isinstance(counter, int) \
                or not 0 <= counter <= MAX_COUNTER:
            raise SealRefused("malformed", "the counter of a sealed message must be an "
                                           "integer from 0 to 2**64-1")
        try:
            direction = Direction(value["direction"])
        except ValueError:
            raise SealRefused("malformed", f"unknown direction {value['direction']!r}") \
                from None
        try:
            lane = Lane(value["lane"])
        except ValueError:
            raise SealRefused("malformed", f"unknown lane {value['lane']!r}") from None
        text = value["ciphertext"]
        if not isinstance(text, str) or len(text) > MAX_CIPHERTEXT_BYTES * 4 // 3 + 4:
            raise SealRefused("malformed", "the ciphertext must be base64 of at most "
                                           f"{MAX_CIPHERTEXT_BYTES} bytes")
        try:
            ciphertext = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SealRefused("malformed", "the ciphertext is not valid base64") from None
        if not isinstance(value["session"], str):
            raise SealRefused("malformed", "the session of a sealed message must be a string")
        return cls(value["session"], direction, lane, counter, ciphertext)


def public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed point (65 bytes), as WebCrypto exports a raw P-256 public key."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("sealed sessions use EC P-256 keys")
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def session_fingerprint(frontend_key: ec.EllipticCurvePublicKey,
                        kernel_key: ec.EllipticCurvePublicKey) -> str:
    """Names one session: SHA-256 over both public points, frontend's first (hex)."""
    return hashlib.sha256(public_point(frontend_key) + public_point(kernel_key)).hexdigest()


def _derive(shared: bytes, fingerprint: str, direction: Direction, lane: Lane) -> AESGCM:
    salt = hashlib.sha256(HKDF_SALT_LABEL + bytes.fromhex(fingerprint)).digest()
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
               info=_info(direction, lane)).derive(shared)
    return AESGCM(key)


def _nonce(counter: int) -> bytes:
    return b"\0" * (NONCE_BYTES - 8) + counter.to_bytes(8, "big")


def _associated(fingerprint: str, direction: Direction, lane: Lane, counter: int) -> bytes:
    return json.dumps({"v": VERSION, "session": fingerprint, "direction": direction.value,
                       "lane": lane.value, "counter": counter},
                      separators=(",", ":"), sort_keys=True).encode()


class SealedChannel:
    """One end of a sealed session: seals what it sends, opens what it receives.

    ``own`` is this end's private key, ``peer`` the other end's public key, ``sends`` the
    direction this end writes in (the frontend sends to the kernel, the kernel to the
    frontend). Thread-safe: the kernel seals outputs from several threads.
    """

    def __init__(self, own: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey,
                 sends: Direction) -> None:
        mine = own.public_key()
        frontend, kernel = (mine, peer) if sends is Direction.TO_KERNEL else (peer, mine)
        self.fingerprint = session_fingerprint(frontend, kernel)
        shared = own.exchange(ec.ECDH(), peer)
        receives = Direction.TO_FRONTEND if sends is Direction.TO_KERNEL \
            else Direction.TO_KERNEL
        self.sends, self.receives = sends, receives
        self._keys = {(direction, lane): _derive(shared, self.fingerprint, direction, lane)
                      for direction in Direction for lane in Lane}
        self._next_out = dict.fromkeys(Lane, 0)
        self._next_in = dict.fromkeys(Lane, 0)
        # Messages a lossy lane skipped, per lane (what a relay dropped, or Jupyter did).
        self.dropped = dict.fromkeys(Lane, 0)
        self._lock = threading.Lock()

    def seal(self, plaintext: bytes, lane: Lane) -> SealedEnvelope:
        with self._lock:
            counter = self._next_out[lane]
            if counter > MAX_COUNTER:
                raise SealRefused("exhausted", "this sealed session has sent all the "
                                               "messages it may; lock a new one")
            self._next_out[lane] += 1
        ciphertext = self._keys[self.sends, lane].encrypt(
            _nonce(counter), plaintext, _associated(self.fingerprint, self.sends, lane, counter))
        return SealedEnvelope(self.fingerprint, self.sends, lane, counter, ciphertext)

    def open(self, envelope: SealedEnvelope) -> bytes:
        """The plaintext of the next message; SealRefused (state unchanged) otherwise."""
        if envelope.session != self.fingerprint:
            raise SealRefused("other-session", "the message belongs to another sealed "
                                               f"session ({envelope.session[:16]}...)")
        if envelope.direction is not self.receives:
            raise SealRefused("wrong-direction", f"a {envelope.direction.value} message "
                                                 "cannot be received here (reflected?)")
        lane = envelope.lane
        with self._lock:
            expected = self._next_in[lane]
            if envelope.counter < expected:
                raise SealRefused("replayed", f"{lane.value} message {envelope.counter} was "
                                              f"already received or skipped (next is "
                                              f"{expected}): replayed or late")
            if envelope.counter > expected and (self.receives, lane) not in LOSSY:
                raise SealRefused("out-of-order", f"{lane.value} message {envelope.counter} "
                                                  f"arrived before message {expected}: "
                                                  "reordered or a message was dropped")
            try:
                plaintext = self._keys[self.receives, lane].decrypt(
                    _nonce(envelope.counter), envelope.ciphertext,
                    _associated(self.fingerprint, envelope.direction, lane, envelope.counter))
            except InvalidTag:
                raise SealRefused("tampered", f"{lane.value} message {envelope.counter} does "
                                              "not authenticate: altered, or sealed under "
                                              "another key") from None
            self.dropped[lane] += envelope.counter - expected
            self._next_in[lane] = envelope.counter + 1
        return plaintext

"""The kernel's lock to one sealed session (docs/sealed-sessions.md, "The lock").

Once locked, the kernel runs only what arrives sealed under the session and seals what it
says; this class holds that state and decides, one message at a time, what may run. It
knows nothing of Jupyter's sockets: the kernel asks it and acts (``kernel/kernel.py``).
"""

from __future__ import annotations

import threading
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from workbench.errors import WorkbenchError
from workbench.sealed import Direction, SealedChannel, SealRefused
from workbench.sealed.certificate import (
    CertificateInvalid,
    SessionCertificate,
    jwk_of,
    thumbprint,
)
from workbench.sealed.keys import key_from_point
from workbench.sealed.messages import REQUEST_LANES, open_request, seal_outgoing

# Requests that run code or reveal state; one of them before the lock forbids the lock,
# because what ran then could have left a hook that outlives it.
RUNS_CODE = frozenset({"execute_request", "debug_request"})
# Refused outright under a lock: no sealed form exists (the debugger evaluates code).
NEVER_WHEN_LOCKED = frozenset({"debug_request"})
# What a refused request is answered with, by request type (comm messages have no reply).
REPLY_OF = {t: t.replace("_request", "_reply") for t in REQUEST_LANES if t.endswith("_request")}
REPLY_OF["debug_request"] = "debug_reply"
SEALED_REQUIRED = "SealedSessionRequired"
INPUT_REPLY = "input_reply"


class LockRefused(WorkbenchError):
    """A lock the kernel will not take; the message says why."""


class KernelLock:
    def __init__(self, own_key: ec.EllipticCurvePrivateKey) -> None:
        self._own = own_key
        self._guard = threading.Lock()
        self.channel: SealedChannel | None = None
        self.session_point = b""
        # The analyst's certificate of the session (None: the session is not certified).
        self.certificate: SessionCertificate | None = None
        self.kernel_key = thumbprint(jwk_of(own_key.public_key()))
        self._ran: list[str] = []

    @property
    def fingerprint(self) -> str | None:
        return self.channel.fingerprint if self.channel is not None else None

    def lock(self, session_key_hex: Any, certificate: Any = None) -> SealedChannel:
        """Lock to the frontend key ``session_key_hex`` (certified by an analyst's key when
        ``certificate`` is given); LockRefused says why not."""
        try:
            point = bytes.fromhex(session_key_hex) if isinstance(session_key_hex, str) else b""
            peer = key_from_point(point)
        except ValueError:
            raise LockRefused("the lock names no session key: session_key must be the hex "
                              "of an uncompressed P-256 point (65 bytes)") from None
        certified = None
        if certificate is not None:
            # Checked here so a bad one fails the lock at once; whether its analyst is
            # registered is the broker's to say.
            try:
                certified = SessionCertificate.from_json(certificate)
                certified.verify(session_key=point.hex(), kernel_key=self.kernel_key)
            except CertificateInvalid as err:
                raise LockRefused(f"the lock's session certificate is refused: {err}") \
                    from None
        with self._guard:
            if self.channel is not None:
                raise LockRefused(f"this kernel is already locked to sealed session "
                                  f"{self.channel.fingerprint[:16]}; a kernel is locked "
                                  "once: restart it for a new lock")
            if self._ran:
                raise LockRefused(f"this kernel already ran {len(self._ran)} request(s) "
                                  f"before any lock ({', '.join(sorted(set(self._ran)))}); "
                                  "what ran could outlive a lock: restart the kernel and "
                                  "lock it before running anything")
            self.channel = SealedChannel(self._own, peer, Direction.TO_FRONTEND)
            self.session_point = point
            self.certificate = certified
            return self.channel

    # -- requests -------------------------------------------------------------------------

    def admit(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
        """The content to run ``msg_type`` with (opened, if sealed); None: let it be.

        SealRefused when the kernel must not run it: locked and the request is not
        sealed, is sealed under another session, or does not open in order.
        """
        # Judged unlocked and recorded as run under one hold of the guard: the lock is taken
        # on the comm subshell's thread, and between a read of ``channel`` and the record a
        # lock could check ``_ran``, find it clean and install the session; the request
        # would then run unsealed in a kernel the analyst believes locked before it ran.
        with self._guard:
            channel = self.channel
            if channel is None:
                if msg_type in RUNS_CODE:
                    self._ran.append(msg_type)
                return None
        if msg_type in NEVER_WHEN_LOCKED:
            raise SealRefused("never-sealed", f"{msg_type} is refused in a locked kernel: it "
                                              "has no sealed form")
        if msg_type not in REQUEST_LANES:
            return None
        return open_request(channel, msg_type, content)

    def admit_input(self, msg_type: str, content: Any) -> dict[str, Any] | None:
        """The content of a message on stdin (opened); None: unlocked, take it as it is.

        ipykernel's ``input()`` takes the first message on stdin, whatever its type, and
        reads its ``value``; so once locked, everything there must be a sealed
        ``input_reply`` that opens under the session. SealRefused says why not.
        """
        channel = self.channel
        if channel is None:
            return None
        if msg_type != INPUT_REPLY:
            raise SealRefused("unsealed", f"{msg_type} on stdin is refused in a locked "
                                          f"kernel: only the session's sealed {INPUT_REPLY} "
                                          "answers its prompts")
        if not isinstance(content, dict):
            raise SealRefused("malformed", f"the {INPUT_REPLY}'s content is not an object")
        return open_request(channel, msg_type, content)

    def refusal(self, msg_type: str, err: SealRefused) -> tuple[str, dict[str, Any]] | None:
        """The (plain) reply to a refused request, or None for a comm message."""
        reply = REPLY_OF.get(msg_type)
        if reply is None:
            return None
        ename = SEALED_REQUIRED if err.kind in ("unsealed", "never-sealed") else "SealRefused"
        session = self.fingerprint or ""
        evalue = (f"{msg_type} refused and not run: this kernel is locked to sealed session "
                  f"{session[:16]} and runs only what that session seals ({err.kind}: {err})")
        return reply, {"status": "error", "ename": ename, "evalue": evalue, "traceback": []}

    # -- what the kernel says --------------------------------------------------------------

    def seal(self, msg_type: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The outer type and content to send under the lock; None: send as it is."""
        channel = self.channel
        if channel is None:
            return None
        return seal_outgoing(channel, msg_type, content)

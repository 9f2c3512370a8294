"""A request and the lock racing on two threads (the shell's main thread and the comm
subshell's): whichever takes the lock's guard first wins, and the other sees it.

The interleaving that used to let an unsealed request through is forced: the thread
admitting the request is held right before it takes the guard while the lock is taken.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.kernel.lock import KernelLock, LockRefused
from workbench.sealed import SealRefused
from workbench.sealed.channel import public_point

EXECUTE = {"code": "steal()", "silent": False, "store_history": True,
           "user_expressions": {}, "allow_stdin": False}
WAIT_S = 5


class HeldGuard:
    """The lock's guard, with one named thread held before it may take it."""

    def __init__(self, held_thread: str) -> None:
        self._lock = threading.Lock()
        self._held = held_thread
        self.waiting = threading.Event()
        self.go = threading.Event()

    def __enter__(self) -> HeldGuard:
        if threading.current_thread().name == self._held:
            self.waiting.set()
            self.go.wait(WAIT_S)
        self._lock.acquire()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._lock.release()


def _session_key() -> str:
    return public_point(ec.generate_private_key(ec.SECP256R1()).public_key()).hex()


def test_a_request_admitted_while_the_lock_is_taken_is_judged_locked() -> None:
    lock = KernelLock(ec.generate_private_key(ec.SECP256R1()))
    lock._guard = HeldGuard("shell-main")  # type: ignore[assignment]
    outcome: dict[str, Any] = {}

    def operator_execute() -> None:
        try:
            outcome["admitted"] = lock.admit("execute_request", EXECUTE)
        except SealRefused as err:
            outcome["refused"] = err

    shell = threading.Thread(target=operator_execute, name="shell-main")
    shell.start()
    assert lock._guard.waiting.wait(WAIT_S)
    channel = lock.lock(_session_key())  # the comm subshell's thread takes the lock first
    lock._guard.go.set()
    shell.join(WAIT_S)
    assert lock.channel is channel
    assert "admitted" not in outcome, "an unsealed execute_request ran after the lock"
    assert outcome["refused"].kind == "unsealed"
    assert "not sealed" in str(outcome["refused"])


def test_a_request_recorded_first_forbids_the_lock() -> None:
    lock = KernelLock(ec.generate_private_key(ec.SECP256R1()))
    lock._guard = HeldGuard("comm-subshell")  # type: ignore[assignment]
    outcome: dict[str, Any] = {}

    def analyst_lock() -> None:
        try:
            outcome["channel"] = lock.lock(_session_key())
        except LockRefused as err:
            outcome["refused"] = err

    subshell = threading.Thread(target=analyst_lock, name="comm-subshell")
    subshell.start()
    assert lock._guard.waiting.wait(WAIT_S)
    assert lock.admit("execute_request", EXECUTE) is None  # unlocked: it runs, recorded
    lock._guard.go.set()
    subshell.join(WAIT_S)
    assert "channel" not in outcome and lock.channel is None
    with pytest.raises(LockRefused, match=r"already ran 1 request\(s\) before any lock "
                                          r"\(execute_request\)"):
        raise outcome["refused"]

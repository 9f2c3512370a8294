"""The kernel's lock, without a kernel: what it admits, what it refuses and why."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.kernel.lock import KernelLock, LockRefused
from workbench.sealed import Direction, SealedChannel, SealRefused
from workbench.sealed.channel import public_point
from workbench.sealed.messages import open_incoming, seal_request

EXECUTE = {"code": "1 + 1", "silent": False, "store_history": True, "user_expressions": {},
           "allow_stdin": False}


def _frontend(lock_key: ec.EllipticCurvePrivateKey
              ) -> tuple[ec.EllipticCurvePrivateKey, SealedChannel]:
    own = ec.generate_private_key(ec.SECP256R1())
    return own, SealedChannel(own, lock_key.public_key(), Direction.TO_KERNEL)


def test_a_kernel_is_locked_once() -> None:
    kernel_key = ec.generate_private_key(ec.SECP256R1())
    lock = KernelLock(kernel_key)
    own, _ = _frontend(kernel_key)
    channel = lock.lock(public_point(own.public_key()).hex())
    other, _ = _frontend(kernel_key)
    with pytest.raises(LockRefused, match=f"already locked to sealed session "
                                          f"{channel.fingerprint[:16]}"):
        lock.lock(public_point(other.public_key()).hex())


def test_no_lock_after_code_ran() -> None:
    lock = KernelLock(ec.generate_private_key(ec.SECP256R1()))
    assert lock.admit("kernel_info_request", {}) is None
    assert lock.admit("execute_request", EXECUTE) is None  # unlocked: runs as it is
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(LockRefused, match=r"already ran 1 request\(s\)"):
        lock.lock(public_point(key).hex())


@pytest.mark.parametrize("session_key", [None, "", "04" + "00" * 64, "zz", 5])
def test_a_lock_without_a_usable_key_is_refused(session_key: object) -> None:
    with pytest.raises(LockRefused, match="session_key must be the hex of an uncompressed"):
        KernelLock(ec.generate_private_key(ec.SECP256R1())).lock(session_key)


def test_under_the_lock_only_sealed_requests_run_and_outputs_leave_sealed() -> None:
    kernel_key = ec.generate_private_key(ec.SECP256R1())
    lock = KernelLock(kernel_key)
    own, frontend = _frontend(kernel_key)
    lock.lock(public_point(own.public_key()).hex())
    with pytest.raises(SealRefused) as refused:
        lock.admit("execute_request", EXECUTE)
    assert refused.value.kind == "unsealed"
    reply = lock.refusal("execute_request", refused.value)
    assert reply is not None and reply[0] == "execute_reply" \
        and reply[1]["ename"] == "SealedSessionRequired"
    assert lock.refusal("comm_msg", refused.value) is None  # no reply type: dropped
    with pytest.raises(SealRefused, match="no sealed form"):
        lock.admit("debug_request", {})
    assert lock.admit("execute_request", seal_request(frontend, "execute_request",
                                                      EXECUTE)) == EXECUTE
    # A sealed request of one type cannot stand for another.
    sealed = seal_request(frontend, "execute_request", EXECUTE)
    with pytest.raises(SealRefused) as spliced:
        lock.admit("complete_request", sealed)
    assert spliced.value.kind == "spliced"
    outer_type, outer = lock.seal("stream", {"name": "stdout", "text": "Jane Doe"}) or ("", {})
    assert outer_type == "display_data" and "Jane Doe" not in str(outer)
    assert open_incoming(frontend, outer_type, outer) == (
        "stream", {"name": "stdout", "text": "Jane Doe"})
    assert lock.seal("execute_input", {"code": "secret()", "execution_count": 1}) == (
        "execute_input", {"code": "", "execution_count": 1})
    assert lock.seal("status", {"execution_state": "idle"}) is None


def test_under_the_lock_stdin_takes_only_the_sessions_sealed_input_reply() -> None:
    kernel_key = ec.generate_private_key(ec.SECP256R1())
    lock = KernelLock(kernel_key)
    answer = {"status": "ok", "value": "yes"}
    assert lock.admit_input("input_replyX", answer) is None  # unlocked: as ipykernel does
    own, frontend = _frontend(kernel_key)
    lock.lock(public_point(own.public_key()).hex())
    refusals = [("input_replyX", answer, "unsealed", "input_replyX on stdin is refused in a "
                 "locked kernel: only the session's sealed input_reply answers its prompts"),
                ("input_reply", answer, "unsealed", "this input_reply is not sealed"),
                ("input_reply", ["value"], "malformed", "content is not an object"),
                ("execute_request", seal_request(frontend, "execute_request", EXECUTE),
                 "unsealed", "execute_request on stdin is refused")]
    for msg_type, content, kind, reason in refusals:
        with pytest.raises(SealRefused, match=reason) as refused:
            lock.admit_input(msg_type, content)
        assert refused.value.kind == kind
    sealed = seal_request(frontend, "input_reply", {"status": "ok", "value": "no"})
    assert lock.admit_input("input_reply", sealed) == {"status": "ok", "value": "no"}

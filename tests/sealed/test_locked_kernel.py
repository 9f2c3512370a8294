"""Issue 12's operator, against a locked kernel: whoever holds the connection file can
neither run code in it, nor read what it says, nor answer its release prompts.

The kernels are real Confidential Python kernels started through jupyter_client against a
real broker on 127.0.0.1; the analyst is the sealed Python client; the operator is a second
client made from the connection file and the kernel's published server key.
"""

from __future__ import annotations

import ast
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sealed_helpers import Subscriber, new_comm_id, operator_client, request

from workbench.client.pins import BrokerKeyChanged
from workbench.client.sealed import SealedKernel, SealedSessionError
from workbench.demo.environment import DATASET
from workbench.sealed import Direction, SealedChannel
from workbench.sealed.channel import public_point
from workbench.sealed.messages import seal_request
from workbench.sealing.keyring import Keyring

COMM = "workbench.attestation"


def _locked(kernel: Any, tmp_path: Path, **options: Any) -> tuple[Any, Any]:
    started = kernel()
    analyst = started.analyst(tmp_path, **options)
    analyst.lock()
    return started, analyst


def _refusal(reply: dict[str, Any]) -> str:
    assert reply["status"] == "error", reply
    return f"{reply['ename']}: {reply['evalue']}"


def test_the_operator_cannot_run_code_in_a_locked_kernel(kernel, tmp_path: Path) -> None:
    started, analyst = _locked(kernel, tmp_path)
    operator = operator_client(started)
    canary = tmp_path / "operator-ran-this"
    reply = request(operator, "execute_request", {
        "code": f"open({str(canary)!r}, 'w').write('x')", "silent": False,
        "store_history": True, "user_expressions": {}, "allow_stdin": False})
    why = _refusal(reply)
    assert why.startswith("SealedSessionRequired: execute_request refused and not run")
    assert analyst.lock_info is not None and analyst.lock_info.session[:16] in why
    # Not run: the analyst's own (sealed) look finds nothing, and the kernel is fine.
    run = analyst.execute(f"import os; print(os.path.exists({str(canary)!r}))")
    assert run.status == "ok" and run.text().strip() == "False"
    assert not canary.exists()


@pytest.mark.parametrize(("msg_type", "content"), [
    ("complete_request", {"code": "import o", "cursor_pos": 8}),
    ("inspect_request", {"code": "df", "cursor_pos": 2, "detail_level": 0}),
    ("history_request", {"output": True, "raw": True, "hist_access_type": "tail", "n": 10}),
    ("is_complete_request", {"code": "df.head("}),
])
def test_the_operator_cannot_complete_inspect_or_read_history(kernel, tmp_path: Path,
                                                              msg_type: str,
                                                              content: dict) -> None:
    started, _analyst = _locked(kernel, tmp_path)
    why = _refusal(request(operator_client(started), msg_type, content))
    assert why.startswith(f"SealedSessionRequired: {msg_type} refused and not run")


def test_the_operator_cannot_debug_or_use_the_control_channel(kernel, tmp_path: Path) -> None:
    started, analyst = _locked(kernel, tmp_path)
    operator = operator_client(started)
    debug = request(operator, "debug_request", {"type": "request", "seq": 1,
                                                "command": "initialize", "arguments": {}},
                    channel="control")
    assert _refusal(debug).startswith("SealedSessionRequired: debug_request refused")
    marker = tmp_path / "via-control"
    control = request(operator, "execute_request", {
        "code": f"open({str(marker)!r}, 'w')", "silent": False, "store_history": False,
        "user_expressions": {}, "allow_stdin": False}, channel="control")
    assert _refusal(control).startswith("SealedSessionRequired: execute_request refused")
    assert not marker.exists()
    # What carries no code keeps working for everyone: kernel_info, interrupt.
    info = request(operator, "kernel_info_request", {})
    assert info["status"] == "ok" and info["workbench"]["sealed"] == analyst.channel.fingerprint
    # Frontends are told there is no debugger to offer.
    assert info["debugger"] is False and "debugger" not in info["supported_features"]
    assert request(operator, "interrupt_request", {}, channel="control")["status"] == "ok"
    assert analyst.execute("1 + 1").data("text/plain") == "2"


def test_a_forged_approval_does_not_count(kernel, tmp_path: Path, site) -> None:
    """The operator answers the release prompt first (even knowing its request id); only
    the analyst's sealed answer counts: here a decline, so nothing is released."""
    started = kernel()
    operator = operator_client(started)
    operator_comm = new_comm_id()
    request_ids: list[str] = []

    def analyst_declines_after_the_forgery(data: dict[str, Any]) -> bool:
        request_ids.append(data["request_id"])
        forged = {"type": "approval", "v": 1, "request_id": data["request_id"],
                  "approved": True, "by": "alice (forged by operator)"}
        # On a comm of its own, and on the analyst's (its id travels in the clear).
        for msg_type, content in (
                ("comm_open", {"comm_id": operator_comm, "target_name": COMM, "data": {}}),
                ("comm_msg", {"comm_id": operator_comm, "data": forged}),
                ("comm_msg", {"comm_id": analyst.comm_id, "data": forged})):
            operator.shell_channel.send(operator.session.msg(msg_type, content))
        time.sleep(1.0)  # the forgery reaches the kernel well before the real answer
        return False

    analyst = started.analyst(tmp_path, approve=analyst_declines_after_the_forgery)
    analyst.lock()
    run = analyst.execute(f"import workbench as wb\ndf = wb.open_dataset({DATASET!r})")
    assert request_ids, "the kernel asked the analyst"
    assert run.error is not None and run.error["ename"] == "ApprovalDeclined"
    assert request_ids[0] in run.error["evalue"]
    assert [e for e in analyst.events if e.get("type") == "released"] == []
    assert _logged(started.log, "refused comm_open") and _logged(started.log, "refused comm_msg")


def test_a_passive_subscriber_reads_no_patient_and_no_key(kernel, tmp_path: Path,
                                                          site) -> None:
    started = kernel()
    tap = Subscriber(operator_client(started))
    analyst = started.analyst(tmp_path, approve=True)
    analyst.lock()
    runs = [analyst.execute(code) for code in (
        f"import workbench as wb\ndf = wb.open_dataset({DATASET!r})\nprint(df.head())",
        "df[['name', 'mrn']].head(3)",
        "print(list(df['name'][:5]))",
        # The worst an analyst could do: print the released keys themselves.
        "from workbench.kernel.state import current_state\n"
        "keys = current_state()._broker._keys\n"
        "print({r: k.hex() for r, k in keys.items()})",
    )]
    recorded = tap.close()
    assert all(run.status == "ok" for run in runs), [r.error for r in runs]
    names = ast.literal_eval(runs[2].text())  # the analyst's own opened output: the canaries
    assert len(names) == 5 and all(name in runs[0].text() for name in names[:2])
    released = [e["resource"] for e in analyst.events if e.get("type") == "released"]
    assert released, "keys were released to the kernel"
    keyring = Keyring.open(site.workdir / "hospital.keyring")
    canaries = list(names)
    for resource in released:
        key = keyring.get_key(resource)
        assert key.hex() in runs[3].text()
        canaries += [key.hex(), base64.b64encode(key).decode(),
                     base64.urlsafe_b64encode(key).decode().rstrip("=")]
    assert len(recorded) > 10_000, "the subscriber saw the session's traffic"
    leaked = [c for c in canaries if c in recorded]
    assert leaked == []
    assert "application/vnd.workbench.sealed+json" in recorded


def _logged(log: Path, text: str, timeout_s: float = 20.0) -> bool:
    """Whether the kernel's log says ``text`` (its stderr is written as it goes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text():
            return True
        time.sleep(0.1)
    return False


def _operator_sends(operator: Any, content: dict[str, Any]) -> dict[str, Any]:
    return request(operator, "execute_request", content)


def test_replay_reorder_splice_and_tamper_are_refused(kernel, tmp_path: Path) -> None:
    started, analyst = _locked(kernel, tmp_path)
    operator = operator_client(started)
    first = analyst.seal("counter = 1")
    assert analyst.collect(analyst.send("execute_request", first)).status == "ok"
    # The operator relays the analyst's message again.
    assert "replayed" in _refusal(_operator_sends(operator, first))
    # Holds one back and sends the later one first.
    held, later = analyst.seal("counter += 1"), analyst.seal("counter += 10")
    assert "out-of-order" in _refusal(_operator_sends(operator, later))
    # Sends a message of another session (another frontend's key to this kernel).
    stranger = SealedChannel(ec.generate_private_key(ec.SECP256R1()), _kernel_key(analyst),
                             Direction.TO_KERNEL)
    foreign = seal_request(stranger, "execute_request", {"code": "counter = 99"})
    assert "another sealed session" in _refusal(_operator_sends(operator, foreign))
    # Flips one byte of the held message's ciphertext.
    envelope = dict(held["sealed"])
    raw = bytearray(base64.b64decode(envelope["ciphertext"]))
    raw[5] ^= 1
    envelope["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    assert "does not authenticate" in _refusal(_operator_sends(operator, {**held,
                                                                         "sealed": envelope}))
    # Nothing of that ran or moved the session: the genuine messages go through in order.
    for content in (held, later):
        assert analyst.collect(analyst.send("execute_request", content)).status == "ok"
    assert analyst.execute("counter").data("text/plain") == "12"


def _kernel_key(analyst: Any) -> ec.EllipticCurvePublicKey:
    from workbench.sealed.keys import key_from_jwk

    return key_from_jwk(analyst.lock_info.claims.get("tee-pubkey"))


def test_a_kernel_is_locked_once_and_only_before_anything_ran(kernel, tmp_path: Path) -> None:
    started, analyst = _locked(kernel, tmp_path)
    # The operator tries to lock the kernel to a key of its own: the lock, like any comm
    # message that is not sealed, is dropped, and the kernel stays the analyst's.
    intruder, comm_id = operator_client(started), new_comm_id()
    own = ec.generate_private_key(ec.SECP256R1()).public_key()
    for msg_type, content in (
            ("comm_open", {"comm_id": comm_id, "target_name": COMM, "data": {}}),
            ("comm_msg", {"comm_id": comm_id, "data": {
                "type": "lock", "v": 1, "session_key": public_point(own).hex()}})):
        intruder.shell_channel.send(intruder.session.msg(msg_type, content))
    assert analyst.execute("'still mine'").data("text/plain") == "'still mine'"
    assert _logged(started.log, "refused comm_msg")
    fingerprint = analyst.channel.fingerprint
    assert request(intruder, "kernel_info_request", {})["workbench"]["sealed"] == fingerprint
    # A frontend that comes later is told so before it sends anything.
    with pytest.raises(SealedSessionError, match="already locked to sealed session "
                                                 + fingerprint[:16]):
        SealedKernel(intruder, timeout_s=30).lock()
    other = kernel()  # a kernel that runs something before anyone locks it
    request(other.client, "execute_request", {"code": "x = 1", "silent": False,
                                              "store_history": True, "user_expressions": {},
                                              "allow_stdin": False})
    late = other.analyst(tmp_path)
    with pytest.raises(SealedSessionError, match=r"already ran 1 request\(s\) before any "
                                                 r"lock \(execute_request\)"):
        late.lock()


def test_a_broker_key_other_than_the_pinned_one_is_refused(kernel, tmp_path: Path) -> None:
    first = kernel().analyst(tmp_path)
    pinned = first.lock().broker_key
    assert pinned.first_use and (tmp_path / "known_brokers.json").is_file()
    # The pin holds for the next kernel of the same broker...
    assert not kernel().analyst(tmp_path).lock().broker_key.first_use
    # ...and a key the analyst was told about that is not the broker's is refused, with both.
    told = "SHA256:" + "A" * 43
    with pytest.raises(BrokerKeyChanged) as refused:
        kernel().analyst(tmp_path, broker_fingerprint=told).lock()
    assert told in str(refused.value) and pinned.fingerprint in str(refused.value)
    # So is a pin made earlier for another key (the operator swapped the broker's key).
    document = json.loads((tmp_path / "known_brokers.json").read_text())
    for entry in document.values():
        entry["fingerprint"] = told
    (tmp_path / "known_brokers.json").write_text(json.dumps(document))
    with pytest.raises(BrokerKeyChanged, match="refusing to trust the kernel"):
        kernel().analyst(tmp_path).lock()

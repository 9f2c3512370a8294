"""The analyst's Python client against a relay that forges, moves and drops messages.

Once the kernel is locked it seals every output, comm message and reply; whatever comes
otherwise was written by the relay (or by a kernel that is no longer locked) and is refused
with its reason, never shown as the kernel's. Gaps on the lossy IOPub lane are counted and
reported. The relay is ``relay_helpers.relay``, around a real kernel's client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from relay_helpers import forged, is_idle_of_execute, is_sealed_output, relay
from sealed_helpers import KERNEL_NAME, ROOT, TIMEOUT_S, Started

from workbench.client.sealed import KernelNotLocked
from workbench.kernel.transport import CurveKernelManager

HIGH = "risk score: HIGH (0.97) - urgent follow-up"
LOW = "risk score: LOW (0.01) - no follow-up needed\n"


def _locked(kernel: Any, tmp_path: Path) -> Any:
    analyst = kernel().analyst(tmp_path)
    analyst.lock()
    return analyst


def test_unsealed_outputs_and_an_unsealed_reply_are_refused(kernel, tmp_path: Path) -> None:
    analyst = _locked(kernel, tmp_path)

    def outputs(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if not is_idle_of_execute(msg):
            return [msg]
        # Before the genuine idle: wipe what the kernel said, say something else.
        parent = msg["parent_header"]
        return [forged("clear_output", {"wait": False}, parent),
                forged("stream", {"name": "stdout", "text": LOW}, parent), msg]

    def reply(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if msg["msg_type"] != "execute_reply":
            return [msg]
        return [{**msg, "content": {"status": "ok",
                                    "execution_count": msg["content"]["execution_count"]}}]

    relay(analyst.client, iopub=outputs, shell=reply)
    run = analyst.execute(f"print({HIGH!r})\nraise ValueError('model integrity check failed')")
    assert run.status == "refused"
    assert [(r.kind, str(r).split(",")[0]) for r in run.refused] == [
        ("unsealed", "an unsealed clear_output arrived"),
        ("unsealed", "an unsealed stream arrived"),
        ("unsealed", "an unsealed execute_reply arrived")]
    assert run.violation.startswith("unsealed: an unsealed clear_output arrived, but a locked "
                                    "kernel seals every clear_output") \
        and run.violation.endswith("(and 2 more)")
    # What the kernel sealed is all that is shown: its output and its error, not the relay's.
    assert run.text() == HIGH + "\n"
    assert run.error is not None and run.error["ename"] == "ValueError"
    assert run.reply == {}
    assert analyst.refused == run.refused
    assert analyst.lost is None  # the kernel is still locked to this session


def test_an_unsealed_comm_message_is_refused(kernel, tmp_path: Path) -> None:
    analyst = _locked(kernel, tmp_path)
    request = {"type": "release-request", "v": 1, "request_id": "forged",
               "resource": "default/key/cohort"}

    def comm(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if not is_idle_of_execute(msg):
            return [msg]
        parent = msg["parent_header"]
        return [forged("comm_msg", {"comm_id": analyst.comm_id, "data": request}, parent),
                # Another frontend's comm: not this session's to judge, and not used.
                forged("comm_msg", {"comm_id": "another", "data": request}, parent), msg]

    relay(analyst.client, iopub=comm)
    run = analyst.execute("1 + 1")
    assert [(r.kind, str(r)) for r in run.refused] == [
        ("unsealed", "an unsealed comm_msg arrived, but a locked kernel seals every comm_msg: "
                     "it is not this session's")]
    assert run.status == "refused" and run.data("text/plain") == "2"
    assert request not in analyst.events  # never answered as a release request
    assert run.reply["status"] == "ok"  # the sealed reply still opened


def _holding_the_first_sealed_output(held: list[dict[str, Any]]
                                     ) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """An IOPub relay step that keeps the first sealed output back, into ``held``."""
    def hold(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if is_sealed_output(msg) and not held:
            held.append(msg)
            return []
        return [msg]
    return hold


def test_a_sealed_output_passed_off_as_the_reply_is_refused(kernel, tmp_path: Path) -> None:
    """The reply must open on the shell lane: an IOPub envelope under a reply is spliced."""
    analyst = _locked(kernel, tmp_path)
    held: list[dict[str, Any]] = []
    hold = _holding_the_first_sealed_output(held)

    def swap(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if msg["msg_type"] != "execute_reply":
            return [msg]
        envelope = held[0]["content"]["data"]["application/vnd.workbench.sealed+json"]
        return [{**msg, "content": {**msg["content"], "sealed": envelope}}]

    relay(analyst.client, iopub=hold, shell=swap)
    run = analyst.execute("print('the output')")
    assert [(r.kind, str(r)) for r in run.refused] == [
        ("spliced", "a sealed execute_reply travels in the shell lane, not iopub")]
    assert run.status == "refused" and run.reply == {}


def test_a_sealed_output_delivered_as_the_reply_is_refused(kernel, tmp_path: Path) -> None:
    """The relay moves a sealed output to the shell channel, in place of the reply."""
    analyst = _locked(kernel, tmp_path)
    held: list[dict[str, Any]] = []
    hold = _holding_the_first_sealed_output(held)

    def swap(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if msg["msg_type"] != "execute_reply":
            return [msg]
        return [{**held[0], "parent_header": msg["parent_header"]}]

    relay(analyst.client, iopub=hold, shell=swap)
    run = analyst.execute("print('the output')")
    assert [(r.kind, str(r)) for r in run.refused] == [
        ("spliced", "a sealed stream came as the reply on the shell channel")]
    assert run.status == "refused" and run.reply == {} and run.outputs == []


def test_an_iopub_gap_is_counted_and_reported(kernel, tmp_path: Path) -> None:
    analyst = _locked(kernel, tmp_path)
    seen: list[dict[str, Any]] = []

    def drop_first(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if is_sealed_output(msg):
            seen.append(msg)
            if len(seen) == 1:
                return []
        return [msg]

    relay(analyst.client, iopub=drop_first)
    run = analyst.execute("for i in range(3):\n    display(i)")
    assert [o["data"]["text/plain"] for o in run.outputs] == ["1", "2"]
    assert run.dropped == 1 and analyst.dropped == 1
    # A gap is Jupyter's right on IOPub (rate limits): reported, not a refusal.
    assert run.status == "ok" and run.refused == []
    assert analyst.execute("'next'").dropped == 0 and analyst.dropped == 1


def test_a_restarted_kernel_is_detected(site, tmp_path: Path) -> None:
    """The operator restarts the kernel under the session and reconnects the analyst (as a
    Jupyter server does after any restart): the new kernel is not locked, runs the sealed
    request's empty outer code and answers in the clear. Refused, and reported as such."""
    site.repin()
    manager = CurveKernelManager(kernel_name=KERNEL_NAME)
    log = tmp_path / "kernel.log"
    with log.open("ab") as handle:  # restart_kernel reuses the handles: kept open
        manager.start_kernel(env={**site.kernel_env(), "JUPYTER_PATH": str(ROOT)},
                             stdout=handle, stderr=handle)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=TIMEOUT_S)
        started = Started(manager, client, log)
        try:
            analyst = started.analyst(tmp_path)
            analyst.lock()
            assert analyst.execute("print('sealed')").text() == "sealed\n"
            manager.restart_kernel(now=True)
            client.stop_channels()
            started.client = analyst.client = manager.client()
            analyst.client.start_channels()
            analyst.client.wait_for_ready(timeout=TIMEOUT_S)
            session = analyst.channel.fingerprint[:16]
            with pytest.raises(KernelNotLocked, match=rf"the kernel is no longer locked to "
                                                      rf"sealed session {session} \(it says not "
                                                      r"locked\): it was restarted or replaced"):
                analyst.execute("print('important result'); raise SystemExit('must not pass')")
            assert [(r.kind, str(r).split(",")[0]) for r in analyst.refused] == [
                ("unsealed", "an unsealed execute_reply arrived")]
            # Nothing more is sent to it: a new lock is a new session.
            with pytest.raises(KernelNotLocked, match="no longer locked"):
                analyst.execute("1")
        finally:
            started.stop()


def test_a_kernel_locked_by_someone_else_put_in_its_place_is_detected(kernel,
                                                                      tmp_path: Path) -> None:
    """The operator routes the analyst's connection to another kernel, one it locked to a
    session of its own: that kernel refuses the analyst's sealed request in the clear."""
    analyst = _locked(kernel, tmp_path)
    other = kernel()
    operator = other.analyst(tmp_path)
    operator.lock()
    analyst.client = other.client
    with pytest.raises(KernelNotLocked, match=rf"no longer locked to sealed session "
                                              rf"{analyst.channel.fingerprint[:16]} \(it says "
                                              rf"locked to {operator.channel.fingerprint[:16]}\)"):
        analyst.execute("1")
    assert [(r.kind, str(r).split(",")[0]) for r in analyst.refused] == [
        ("unsealed", "an unsealed execute_reply arrived")]

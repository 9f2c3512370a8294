"""The operator against input() in a locked kernel: whoever holds the connection file can
send anything on stdin, and ipykernel's input() takes the first message there whatever its
type. Once locked, only the session's sealed input_reply answers; everything else is
refused, logged as every refusal is, and dropped, so the analyst's answer still counts.

Real kernel, real broker; the analyst is the sealed Python client, answering the sealed
input_request on the stdin channel as JupyterLab's extension does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sealed_helpers import TIMEOUT_S, operator_client

from workbench.sealed.messages import open_incoming, seal_request

OPERATOR_ANSWER = "yes, export everything"
ANALYST_ANSWER = "no"
SPRAY_EVERY_S = 0.05


def _spray(operator: Any, stop: threading.Event, sent: list[str]) -> None:
    """Answer on stdin until told to stop: a made-up type, and a plain input_reply."""
    while not stop.is_set():
        for msg_type in ("input_replyX", "input_reply"):
            msg = operator.session.msg(msg_type, {"status": "ok", "value": OPERATOR_ANSWER})
            operator.stdin_channel.send(msg)
            sent.append(msg_type)
        time.sleep(SPRAY_EVERY_S)


def test_the_operator_cannot_answer_input_in_a_locked_kernel(kernel, tmp_path: Path) -> None:
    started = kernel()
    analyst = started.analyst(tmp_path)
    analyst.lock()
    operator = operator_client(started)
    channel = analyst.channel
    assert channel is not None

    stop, sent = threading.Event(), []
    spray = threading.Thread(target=_spray, args=(operator, stop, sent), daemon=True)
    spray.start()
    try:
        msg_id = analyst.send("execute_request", seal_request(channel, "execute_request", {
            "code": "answer = input('Export the cohort? ')\nprint('input:', repr(answer))",
            "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": True, "stop_on_error": True}))
        request = analyst.client.get_stdin_msg(timeout=TIMEOUT_S)
        # Let the operator's answers reach the waiting input() first.
        time.sleep(10 * SPRAY_EVERY_S)
        opened = open_incoming(channel, "input_request", request["content"])
        assert opened == ("input_request", {"prompt": "Export the cohort? ",
                                            "password": False})
        reply = analyst.client.session.msg(
            "input_reply", seal_request(channel, "input_reply",
                                        {"status": "ok", "value": ANALYST_ANSWER}),
            parent=request["header"])
        analyst.client.stdin_channel.send(reply)
        run = analyst.collect(msg_id)
    finally:
        stop.set()
        spray.join()
    assert {"input_replyX", "input_reply"} <= set(sent)
    assert run.status == "ok", run.reply
    assert run.text() == f"input: {ANALYST_ANSWER!r}\n"
    log = started.log.read_text(errors="replace")
    assert "refused input_replyX" in log
    assert ("input_replyX on stdin is refused in a locked kernel: only the session's sealed "
            "input_reply answers its prompts") in log
    assert "refused input_reply " in log and "this input_reply is not sealed" in log
    assert OPERATOR_ANSWER not in log

"""The operator's relay between a kernel and the analyst's client, for the client's tests.

Whoever relays the messages (a Jupyter server, a Kernel Gateway, a hub's proxy) holds the
connection's HMAC key and sees every outer message, parent headers included: it can drop a
message, hold it, alter it or insert its own. Here that is a wrapper around the client's
message getters, each message passed through a rewrite that returns what to deliver instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
Rewrite = Callable[[Message], list[Message]]


def relay(client: Any, *, iopub: Rewrite | None = None, shell: Rewrite | None = None) -> None:
    """From now on, ``client`` receives what ``iopub`` / ``shell`` make of each message."""
    for name, rewrite in (("iopub", iopub), ("shell", shell)):
        if rewrite is not None:
            setattr(client, f"get_{name}_msg", _through(getattr(client, f"get_{name}_msg"),
                                                        rewrite))


def _through(real: Callable[..., Message], rewrite: Rewrite) -> Callable[..., Message]:
    pending: list[Message] = []

    def get(*args: Any, **kwargs: Any) -> Message:
        while not pending:
            pending.extend(rewrite(real(*args, **kwargs)))
        return pending.pop(0)

    return get


def forged(msg_type: str, content: dict[str, Any], parent: dict[str, Any]) -> Message:
    """A message the relay writes itself, as a reply or output to ``parent``."""
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type},
            "msg_type": msg_type, "parent_header": parent, "metadata": {},
            "content": content, "buffers": []}


def is_idle_of_execute(msg: Message) -> bool:
    parent = msg.get("parent_header") or {}
    return msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle" \
        and parent.get("msg_type") == "execute_request"


def is_sealed_output(msg: Message) -> bool:
    return msg["msg_type"] == "display_data" and \
        "application/vnd.workbench.sealed+json" in (msg["content"].get("data") or {})

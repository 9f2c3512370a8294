"""Jupyter messages as they travel in a sealed session (docs/sealed-sessions.md).

Both ends use these: the kernel opens requests and seals what it sends, a frontend seals
requests and opens what it receives. The plaintext of a sealed message is the compact JSON
``{"msg_type": T, "content": C}`` of the message it stands for; the outer message keeps
only what Jupyter needs to route it (its type, a comm id, a reply's status).
"""

from __future__ import annotations

import json
from typing import Any

from workbench.sealed.channel import Lane, SealedChannel, SealedEnvelope, SealRefused

SEALED_MIME = "application/vnd.workbench.sealed+json"
SEALED_FIELD = "sealed"
EXECUTION_COUNT = "execution_count"

# Requests a locked kernel runs only sealed, and the lane each travels in.
REQUEST_LANES: dict[str, Lane] = {
    "execute_request": Lane.SHELL,
    "complete_request": Lane.SHELL,
    "inspect_request": Lane.SHELL,
    "history_request": Lane.SHELL,
    "is_complete_request": Lane.SHELL,
    "comm_open": Lane.COMM,
    "comm_msg": Lane.COMM,
    "comm_close": Lane.COMM,
    "input_reply": Lane.STDIN,
}

# What the outer request must carry besides the envelope, so Jupyter's relays and a stock
# kernel see a well-formed message (a kernel that is not ours fails on the empty code).
REQUEST_STUBS: dict[str, dict[str, Any]] = {
    "execute_request": {"code": "", "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": True, "stop_on_error": True},
    "complete_request": {"code": "", "cursor_pos": 0},
    "inspect_request": {"code": "", "cursor_pos": 0, "detail_level": 0},
    "history_request": {"output": False, "raw": True, "hist_access_type": "tail", "n": 0},
    "is_complete_request": {"code": ""},
    "input_reply": {"status": "ok", "value": ""},
}

# Outputs: each travels as one display_data holding only the sealed bundle.
OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error",
                          "update_display_data", "clear_output"})
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
# Replies to sealed requests: the status stays readable (Jupyter's clients need it).
REPLY_TYPES = frozenset({"execute_reply", "complete_reply", "inspect_reply",
                         "history_reply", "is_complete_reply"})
# The lane of what a frontend receives, by outer type (outputs and comms: IOPub).
INCOMING_LANES: dict[str, Lane] = {**dict.fromkeys(REPLY_TYPES, Lane.SHELL),
                                   "input_request": Lane.STDIN}
# What a locked kernel never sends in the clear (seal_outgoing seals each of them).
SEALED_BY_KERNEL = OUTPUT_TYPES | COMM_TYPES | REPLY_TYPES | {"input_request"}
# The code a frontend sent is echoed on IOPub; under a lock the echo is left empty.
EMPTIED = {"execute_input": "code"}


def _plaintext(msg_type: str, content: dict[str, Any]) -> bytes:
    return json.dumps({"msg_type": msg_type, "content": content},
                      separators=(",", ":"), default=str).encode()


def _parse_plaintext(plaintext: bytes, allowed: frozenset[str] | set[str]
                     ) -> tuple[str, dict[str, Any]]:
    try:
        inner = json.loads(plaintext)
    except ValueError:
        raise SealRefused("malformed", "a sealed message's plaintext is not JSON") from None
    if not isinstance(inner, dict) or set(inner) != {"msg_type", "content"} \
            or not isinstance(inner["content"], dict):
        raise SealRefused("malformed", "a sealed message's plaintext is not "
                                       "{msg_type, content}")
    if inner["msg_type"] not in allowed:
        raise SealRefused("spliced", f"a sealed {inner['msg_type']!r} cannot stand for "
                                     f"{' or '.join(sorted(allowed))}")
    return inner["msg_type"], inner["content"]


def _envelope_in(content: dict[str, Any], msg_type: str) -> SealedEnvelope:
    holder = content.get("data") if msg_type in COMM_TYPES else content
    if not isinstance(holder, dict) or SEALED_FIELD not in holder:
        raise SealRefused("unsealed", f"this {msg_type} is not sealed")
    return SealedEnvelope.from_json(holder[SEALED_FIELD])


# -- frontend to kernel ---------------------------------------------------------------------

def seal_request(channel: SealedChannel, msg_type: str, content: dict[str, Any]
                 ) -> dict[str, Any]:
    """The outer content of a sealed request standing for ``content``."""
    lane = REQUEST_LANES[msg_type]
    envelope = channel.seal(_plaintext(msg_type, content), lane).to_json()
    if msg_type in COMM_TYPES:
        routing = {k: content[k] for k in ("comm_id", "target_name") if k in content}
        return {**routing, "data": {SEALED_FIELD: envelope}}
    return {**REQUEST_STUBS.get(msg_type, {}), SEALED_FIELD: envelope}


def open_request(channel: SealedChannel, msg_type: str, content: dict[str, Any]
                 ) -> dict[str, Any]:
    """The inner content of a sealed request; SealRefused when it is not one of ours."""
    lane = REQUEST_LANES.get(msg_type)
    if lane is None:
        raise SealRefused("unsealed", f"{msg_type} cannot be sealed")
    envelope = _envelope_in(content, msg_type)
    if envelope.lane is not lane:
        raise SealRefused("spliced", f"a {msg_type} travels in the {lane.value} lane, "
                                     f"not {envelope.lane.value}")
    _, inner = _parse_plaintext(channel.open(envelope), {msg_type})
    if msg_type in COMM_TYPES and inner.get("comm_id") != content.get("comm_id"):
        raise SealRefused("spliced", "the sealed comm message names another comm")
    return inner


# -- kernel to frontend ---------------------------------------------------------------------

def seal_outgoing(channel: SealedChannel, msg_type: str, content: dict[str, Any]
                  ) -> tuple[str, dict[str, Any]] | None:
    """The outer type and content of what the kernel sends; None: send it as it is."""
    if msg_type in EMPTIED:
        return msg_type, {**content, EMPTIED[msg_type]: ""}
    if msg_type in OUTPUT_TYPES:
        envelope = channel.seal(_plaintext(msg_type, content), Lane.IOPUB).to_json()
        return "display_data", {"data": {SEALED_MIME: envelope}, "metadata": {},
                                "transient": {}}
    if msg_type in COMM_TYPES:
        envelope = channel.seal(_plaintext(msg_type, content), Lane.IOPUB).to_json()
        routing = {k: content[k] for k in ("comm_id", "target_name") if k in content}
        return msg_type, {**routing, "data": {SEALED_FIELD: envelope}}
    if msg_type in REPLY_TYPES:
        envelope = channel.seal(_plaintext(msg_type, content), Lane.SHELL).to_json()
        outer = {"status": content.get("status", "ok"), SEALED_FIELD: envelope}
        if EXECUTION_COUNT in content:
            outer[EXECUTION_COUNT] = content[EXECUTION_COUNT]
        return msg_type, outer
    if msg_type == "input_request":
        envelope = channel.seal(_plaintext(msg_type, content), Lane.STDIN).to_json()
        return msg_type, {"prompt": "", "password": bool(content.get("password")),
                          SEALED_FIELD: envelope}
    return None


def open_incoming(channel: SealedChannel, msg_type: str, content: dict[str, Any]
                  ) -> tuple[str, dict[str, Any]] | None:
    """What a sealed message from the kernel stands for; None when it is not sealed."""
    if msg_type == "display_data" and SEALED_MIME in (content.get("data") or {}):
        envelope = SealedEnvelope.from_json(content["data"][SEALED_MIME])
        allowed: frozenset[str] | set[str] = OUTPUT_TYPES
    elif msg_type in COMM_TYPES | REPLY_TYPES | {"input_request"}:
        try:
            envelope = _envelope_in(content, msg_type)
        except SealRefused:
            return None
        allowed = {msg_type}
    else:
        return None
    lane = INCOMING_LANES.get(msg_type, Lane.IOPUB)
    if envelope.lane is not lane:
        raise SealRefused("spliced", f"a sealed {msg_type} travels in the {lane.value} "
                                     f"lane, not {envelope.lane.value}")
    return _parse_plaintext(channel.open(envelope), allowed)


def open_sealed(channel: SealedChannel, msg_type: str, content: dict[str, Any]
                ) -> tuple[str, dict[str, Any]] | None:
    """As ``open_incoming`` for a frontend whose kernel is locked: what the kernel seals
    (outputs, comm messages, replies, input requests) must come sealed, so an unsealed one
    is SealRefused ``unsealed``, never None. None: a type that travels in the clear."""
    opened = open_incoming(channel, msg_type, content)
    if opened is None and msg_type in SEALED_BY_KERNEL:
        raise SealRefused("unsealed", f"an unsealed {msg_type} arrived, but a locked kernel "
                                      f"seals every {msg_type}: it is not this session's")
    return opened

"""A client's own check of the kernel it is connected to, as the lab server does for the
browser: fresh evidence over the comm, judged by the verdict engine, with the transport key
compared against this client's own connection.

It lives above both the kernel's transport (which knows the connection's keys) and the
verdict engine (which knows nothing of connections).
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workbench.errors import WorkbenchError
from workbench.kernel.transport import TransportError, server_key
from workbench.protocol.comm import COMM_TARGET, COMM_VERSION
from workbench.protocol.jwks import JwksProblem, fetch_jwks, jwks_url
from workbench.verdict import (
    BadReport,
    TransportContext,
    TrustSettings,
    Verdict,
    judge,
    parse_report,
)

DEFAULT_VERIFY_TIMEOUT_S = 60.0


class KernelRefused(WorkbenchError):
    """The client's own check of the kernel failed; ``verdict`` holds every check."""

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict = verdict


def attestation_over_comm(client: Any, timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S
                          ) -> dict[str, Any]:
    """Ask the kernel for a fresh attestation on the workbench comm: the ``evidence`` message
    body (docs/comm-protocol.md), which is what the lab server's verify route takes."""
    comm_id = uuid.uuid4().hex
    session = client.session
    client.shell_channel.send(session.msg("comm_open", {
        "comm_id": comm_id, "target_name": COMM_TARGET, "data": {"v": COMM_VERSION}}))
    client.shell_channel.send(session.msg("comm_msg", {
        "comm_id": comm_id, "data": {"type": "attest", "v": COMM_VERSION}}))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"the kernel sent no attestation within {timeout_s:g} s")
            try:
                msg = client.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            content = msg.get("content", {})
            if content.get("comm_id") != comm_id:
                continue
            if msg.get("msg_type") == "comm_close":
                raise TransportError(f"the kernel has no {COMM_TARGET} comm: it is not "
                                     "a confidential kernel, there is nothing to verify")
            if msg.get("msg_type") != "comm_msg":
                continue
            data = content.get("data") or {}
            if data.get("type") == "evidence":
                return data
            if data.get("type") == "error":
                raise TransportError(f"the kernel could not attest: {data.get('reason')}")
    finally:
        client.shell_channel.send(session.msg("comm_close", {"comm_id": comm_id, "data": {}}))


def verify_connection(client: Any, *, broker_keys: Sequence[Any] | None = None,
                      broker_url: str = "", timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S,
                      simulated_keys: Any = None, collateral: Any = None) -> Verdict:
    """Check, from the client's side, the kernel this ``client`` is connected to.

    The kernel attests afresh over the comm; the token is verified against ``broker_keys``
    (default: the keys the broker at ``broker_url`` publishes), the evidence is verified and
    must bind the nonce, the kernel's key and the transport key, and that transport key must
    be the server key this client's sockets use. Returns the verdict (``state`` verified or
    simulated); raises :class:`KernelRefused` with the first failed check otherwise.
    """
    if broker_keys is None:
        broker_keys = _published_keys(broker_url, timeout_s)
    body = attestation_over_comm(client, timeout_s)
    try:
        report = parse_report(body)
    except BadReport as err:
        raise TransportError(f"the kernel's attestation is malformed: {err}") from None
    context = TransportContext(server_key=server_key(client), source="this client's connection")
    trust = TrustSettings(broker_keys=list(broker_keys), broker_url=broker_url,
                          key_source=broker_url or "given keys", simulated_keys=simulated_keys,
                          collateral=collateral, transport=context)
    verdict = judge(report, trust, now=datetime.now(UTC))
    if not verdict.allows_release:
        raise KernelRefused(f"kernel refused ({verdict.state}): {verdict.reason}", verdict)
    return verdict


def _published_keys(broker_url: str, timeout_s: float) -> list[Any]:
    if not broker_url:
        raise TransportError("no broker keys given and no broker_url to fetch them from")
    try:
        return fetch_jwks(jwks_url(broker_url), timeout_s=timeout_s)
    except JwksProblem as err:
        raise TransportError(f"cannot fetch the broker's keys from {broker_url} ({err})") \
            from None

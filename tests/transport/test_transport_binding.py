"""The kernel's evidence binds the key its channels are served with, and clients check it.

The broker states the bound key in its token; a client that connected to the kernel
itself finds the bound key equal to its server key. A relay run by the operator, holding a
key of its own and forwarding everything to the real kernel, passes on the real kernel's
genuine evidence, and is refused by exactly that comparison (issue 7: a kernel whose
channel key differs from the one bound in its evidence). The lab server does the same for
a kernel it names by id, over its own connection.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from jupyter_client.blocking import BlockingKernelClient
from jwcrypto.jwk import JWK
from lab_server import lab_server
from transport_kernels import ROOT, Kernel

from workbench.attestation.appraise.ear import verify_token
from workbench.client.check import KernelRefused, attestation_over_comm, verify_connection
from workbench.kernel.transport import TransportError, curve_capable, raw_key, server_key

HERE = Path(__file__).parent
RELAY_START_TIMEOUT_S = 60.0


def _platform(site) -> list[str]:
    """The hospital's simulated-TEE platform key (the kernels' home is the hospital's)."""
    return [str(site.home / "simulated-tee" / "platform-key.pub.pem")]


def _checks(verdict: dict) -> dict[str, dict]:
    return {c["name"]: c for c in verdict["checks"]}


def test_the_bound_key_is_the_server_key_in_use(kernel: Kernel, site):
    verdict = verify_connection(kernel.client, broker_url=site.broker_url,
                                simulated_keys=_platform(site))
    in_use = server_key(kernel.client)
    assert in_use == raw_key(kernel.manager.curve_publickey)
    assert verdict["state"] == "simulated", verdict["reason"]
    assert _checks(verdict)["transport-key"]["ok"] is True
    assert verdict["transport"]["bound"] == verdict["transport"]["server_key"] == in_use.hex()
    # The broker checked the same binding and says so in its signed token and audit log.
    body = attestation_over_comm(kernel.client)
    keys = [JWK(**k) for k in httpx.get(f"{site.broker_url}/.well-known/jwks.json")
            .json()["keys"]]
    claims = verify_token(body["token"], keys[0])
    assert claims["workbench.transport-key"] == in_use.hex() == body["transport_key"]
    with site.admin() as admin:
        attests = [r["payload"] for r in admin.audit(kind="attest", limit=1000)]
    assert in_use.hex() in {p.get("transport_key") for p in attests}


@pytest.fixture
def relay(kernel: Kernel, tmp_path: Path):
    """The operator's CurveZMQ relay in front of the real kernel, and a client of it."""
    out = tmp_path / "relay.json"
    log = (tmp_path / "relay.log").open("ab")
    process = subprocess.Popen([sys.executable, str(HERE / "curve_relay.py"),
                                kernel.manager.connection_file, str(out)],
                               stdout=log, stderr=subprocess.STDOUT)
    client = curve_capable(BlockingKernelClient)()
    try:
        deadline = time.monotonic() + RELAY_START_TIMEOUT_S
        while not out.exists():
            assert process.poll() is None, (tmp_path / "relay.log").read_text()
            assert time.monotonic() < deadline, "the relay did not start"
            time.sleep(0.05)
        client.load_connection_info(json.loads(out.read_text()))
        client.start_channels()
        client.wait_for_ready(timeout=120)
        yield client
    finally:
        client.stop_channels()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_a_relay_with_its_own_key_is_refused(kernel: Kernel, relay: BlockingKernelClient,
                                             site):
    # The relay works: the kernel answers through it (and the relay reads every message).
    assert relay.kernel_info(reply=True, timeout=60)["content"]["status"] == "ok"
    relay_key, kernel_key = server_key(relay), server_key(kernel.client)
    assert relay_key != kernel_key
    with pytest.raises(KernelRefused) as refused:
        verify_connection(relay, broker_url=site.broker_url, simulated_keys=_platform(site))
    verdict = refused.value.verdict
    failed = {name: c["detail"] for name, c in _checks(verdict).items() if not c["ok"]}
    # Only the transport check fails: the evidence itself is the real kernel's.
    assert list(failed) == ["transport-key"]
    assert failed["transport-key"] == (
        f"the evidence binds transport key {kernel_key.hex()[:16]}..., but this client's "
        f"connection uses server key {relay_key.hex()[:16]}...: another process holds this "
        "connection's key")
    assert verdict["state"] == "refused"
    assert "kernel refused (refused): the evidence binds transport key" in str(refused.value)


def test_a_kernel_without_the_attestation_comm_is_refused(site, start_kernel):
    """A plain ipykernel has no evidence and no key to check: refused, with that reason."""
    plain = start_kernel("python3")
    with pytest.raises(TransportError) as refused:
        verify_connection(plain.client, broker_url=site.broker_url)
    assert str(refused.value) == ("the kernel has no workbench.attestation comm: it is not a "
                                  "confidential kernel, there is nothing to verify")


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    site.repin()
    env = site.kernel_env(WORKBENCH_KBS_URL=site.broker_url, JUPYTER_PATH=str(ROOT))
    with lab_server(env, tmp_path_factory.mktemp("lab-server")) as running:
        yield running


def _report_over_own_connection(server, kernel_id: str) -> dict:
    client = curve_capable(BlockingKernelClient)(
        connection_file=str(server.connection_file(kernel_id)))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        return attestation_over_comm(client)
    finally:
        client.stop_channels()


def test_the_lab_server_checks_its_own_connection_to_the_named_kernel(server):
    first, second = server.start_kernel(), server.start_kernel()
    # The server's stock kernel manager talks to the kernel with the kernel's key.
    printed = asyncio.run(server.execute_over_websocket(first, "print(6 * 7)"))
    assert printed.strip() == "42"
    report = _report_over_own_connection(server, first)
    verdict = server.verify({**report, "kernel_id": first})
    assert verdict["state"] == "simulated", verdict["reason"]
    assert _checks(verdict)["transport-key"]["detail"].startswith(
        f"the evidence binds the server key of this server's connection to kernel {first}")
    # The first kernel's report offered for the second kernel (a relay to another of the
    # user's kernels): the second connection's key is not the one bound.
    crossed = server.verify({**report, "kernel_id": second})
    assert crossed["state"] == "refused"
    assert crossed["reason"].startswith(
        f"the evidence binds transport key {report['transport_key'][:16]}..., but this "
        f"server's connection to kernel {second} uses server key")
    # Without a kernel id the server has no connection to compare with: no such check.
    unnamed = server.verify(report)
    assert "transport-key" not in _checks(unnamed) and unnamed["transport"] is None
    assert unnamed["state"] == "simulated"

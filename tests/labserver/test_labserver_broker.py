"""Against a real broker process: the server fetches the broker's published keys and agrees
with the broker about a kernel that attested to it, without talking to the kernel."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.attestation.tee.simulated import SimulatedProvider

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kbs"))
from kbs_helpers import (
    Broker,
    provider_for,
    running_broker,
    sim_policy,
)

from workbench.brokerclient import BrokerSession


class RecordingProvider:
    """The kernel's provider, keeping the evidence it produced (the kernel reports it)."""

    def __init__(self, inner: SimulatedProvider) -> None:
        self.inner = inner
        self.name, self.tee = inner.name, inner.tee
        self.last = b""

    def evidence(self, report_data: bytes) -> bytes:
        self.last = self.inner.evidence(report_data)
        return self.last


@pytest.fixture(scope="module")
def real_broker(tmp_path_factory: pytest.TempPathFactory):
    with running_broker(tmp_path_factory.mktemp("kbs")) as broker:
        yield broker


@pytest.fixture
def lab_config(real_broker: Broker) -> dict[str, Any]:
    return {"broker_public_keys": [], "broker_url": real_broker.url,
            "simulated_platform_keys": [
                str(real_broker.home / "simulated-tee" / "platform-key.pub.pem")]}


def _attest(broker: Broker, provider: RecordingProvider, path: str) -> dict[str, Any]:
    with BrokerSession(broker.url, provider=provider) as session:
        session.attest([path])
        assert session.token is not None and session.nonce is not None
        return {"token": session.token, "tee_pubkey": session.tee_pubkey,
                "nonce": session.nonce, "evidence": base64.b64encode(provider.last).decode()}


async def test_published_keys_and_the_brokers_verdict(jp_fetch, real_broker: Broker,
                                                      fixed_package: Path) -> None:
    provider = RecordingProvider(provider_for(real_broker, fixed_package))
    path = "labserver-ok/table-key/phi"
    real_broker.add_resource(path, b"k" * 32, sim_policy(provider.inner))
    body = _attest(real_broker, provider, path)
    response = await jp_fetch("workbench", "verify", method="POST", body=json.dumps(body))
    verdict = json.loads(response.body)
    assert verdict["state"] == "simulated", verdict["reason"]
    assert verdict["broker"]["key_source"] == \
        f"published {real_broker.url}/.well-known/jwks.json"
    assert verdict["resources"][path]["status"] == "warning"
    assert verdict["evidence"]["claims"]["measurement"] == \
        provider.inner.measurement().measurement


async def test_a_policy_the_broker_refused_is_refused(jp_fetch, real_broker: Broker,
                                                      fixed_package: Path) -> None:
    provider = RecordingProvider(provider_for(real_broker, fixed_package))
    path = "labserver-wrong-measurement/table-key/phi"
    policy = sim_policy(provider.inner, reference_values={
        "simulated": {"measurement": "00" * 48}})
    real_broker.add_resource(path, b"k" * 32, policy)
    body = _attest(real_broker, provider, path)
    response = await jp_fetch("workbench", "verify", method="POST", body=json.dumps(body))
    verdict = json.loads(response.body)
    assert verdict["state"] == "refused"
    assert "simulated.measurement" in verdict["appraisal"]["failed_rules"]
    assert verdict["reason"].startswith("policy 'simulated-test-kernel' refuses this kernel")

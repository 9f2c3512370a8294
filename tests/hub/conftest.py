"""Fixtures: the hospital's broker with the sealed demo assets, and one JupyterHub per test
module (hub start-up is slow), configured by deploy/jupyterhub/jupyterhub_config.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_processes import Hub, HubPorts, hospital_for_hub, running_hub

from workbench.demo.environment import Hospital


@pytest.fixture(scope="module")
def hub_ports() -> HubPorts:
    return HubPorts.free()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, hub_ports: HubPorts) -> Iterator[Hospital]:
    """A broker on a loopback port that checks analysts at the hub's API; the cohort and
    model registered under the demo's simulated-TEE policy pinning this installation's
    kernel measurement."""
    with hospital_for_hub(tmp_path_factory.mktemp("hospital"), hub_ports) as running:
        yield running


@pytest.fixture(scope="module")
def hub(site: Hospital, hub_ports: HubPorts, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Hub]:
    with running_hub(site, tmp_path_factory.mktemp("hub"), hub_ports) as running:
        yield running


@pytest.fixture(scope="session")
def plain_scores(demo_assets):
    """The demo model's scores of the demo cohort, from the plaintext assets."""
    from demo_scores import plain_scores as compute

    return compute(demo_assets)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each test's outcome on its item, so the browser test's page fixture can save a
    screenshot of a failure."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report

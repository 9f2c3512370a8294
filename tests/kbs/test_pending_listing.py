"""The data owner's list of approval requests, against a real broker of its own (exact
counts): requests past their deadline are expired (and audited) when listed, the newest come
first, and a page says how many more there are and where the next one starts; so abandoned
requests never hide a genuine new one from `workbench kbs pending`."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from kbs_helpers import ADMIN_TOKEN, Broker, provider_for, running_broker, sim_policy

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.brokerclient import BrokerSession


@pytest.fixture(scope="module")
def own(tmp_path_factory, fixed_package) -> Iterator[tuple[Broker, SimulatedProvider]]:
    with running_broker(tmp_path_factory.mktemp("pending-listing")) as broker:
        yield broker, provider_for(broker, fixed_package)


def _ask(broker: Broker, provider: SimulatedProvider, names: list[str],
         timeout_s: int) -> list[str]:
    """One kernel asks for each resource (each needing approval) and goes away."""
    for name in names:
        broker.add_resource(f"{name}/table-key/phi", os.urandom(32), sim_policy(provider),
                            require_approval=True, approval_timeout_s=timeout_s)
    with BrokerSession(broker.url, provider=provider) as session:
        session.attest([])
        return [session.fetch(f"{name}/table-key/phi").request_id for name in names]


def _listing(broker: Broker, **params) -> tuple[list[dict], dict[str, str]]:
    with broker.admin() as admin:
        response = admin.get("/approvals", params=params)
    assert response.status_code == 200, response.text
    return response.json(), dict(response.headers)


def test_abandoned_requests_expire_when_listed_and_never_hide_a_new_one(own) -> None:
    broker, provider = own
    abandoned = _ask(broker, provider, [f"old{i}" for i in range(6)], timeout_s=1)
    time.sleep(1.2)  # every one of those deadlines has passed; nobody polls again
    [genuine] = _ask(broker, provider, ["cohort"], timeout_s=900)
    listed, headers = _listing(broker)
    assert [a["id"] for a in listed] == [genuine]
    assert headers["x-total-count"] == "1" and headers["x-more-count"] == "0"
    expired, _ = _listing(broker, state="expired")
    assert sorted(a["id"] for a in expired) == sorted(abandoned)
    assert all(a["reason"] == "timed out" and a["decided_at"] for a in expired)
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": "expiry", "limit": 1000}).json()
    assert sorted(r["payload"]["request"] for r in records) == sorted(abandoned)
    # Listed again: nothing is expired twice.
    _listing(broker, state="all")
    with broker.admin() as admin:
        again = admin.get("/audit", params={"kind": "expiry", "limit": 1000}).json()
    assert len(again) == len(abandoned)
    with broker.admin() as admin:
        late = admin.post(f"/approvals/{abandoned[0]}/approve", json={})
    assert late.status_code == 409 and "is already expired" in late.json()["detail"]


def test_pages_run_newest_first_and_say_what_follows(own) -> None:
    broker, provider = own
    before, _ = _listing(broker)
    ids = _ask(broker, provider, [f"paged{i}" for i in range(5)], timeout_s=900)
    newest_first = list(reversed(ids)) + [a["id"] for a in before]
    total = str(len(newest_first))
    seen: list[str] = []
    params: dict = {"limit": 2}
    while True:
        page, headers = _listing(broker, **params)
        seen += [a["id"] for a in page]
        assert headers["x-total-count"] == total
        assert headers["x-more-count"] == str(len(newest_first) - len(seen))
        if "link" not in headers:
            break
        assert headers["link"] == (f'</admin/v0/approvals?state=pending&limit=2&before='
                                   f'{page[-1]["id"]}>; rel="next"')
        params = {"limit": 2, "before": page[-1]["id"]}
    assert seen == newest_first


@pytest.mark.parametrize(("params", "status", "problem", "detail"), [
    ({"before": "req-0000000000000000"}, 404, "ApprovalNotFound",
     "approval request req-0000000000000000 not found (before=)"),
    ({"limit": 0}, 400, "MalformedRequest", "query.limit: Input should be greater than or "
                                            "equal to 1"),
    ({"limit": 1001}, 400, "MalformedRequest", "query.limit: Input should be less than or "
                                               "equal to 1000"),
    ({"before": "a/b"}, 400, "MalformedRequest", "query.before: String should match pattern"),
])
def test_a_bad_page_is_refused(own, params: dict, status: int, problem: str,
                               detail: str) -> None:
    broker, _ = own
    with broker.admin() as admin:
        response = admin.get("/approvals", params=params)
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(f":{problem}")
    assert response.json()["detail"].startswith(detail)


def test_the_command_line_says_how_many_more(own, tmp_path, workbench_cli: str) -> None:
    broker, provider = own
    token = tmp_path / "admin-token"
    token.write_text(ADMIN_TOKEN)
    newest = _ask(broker, provider, ["cli0", "cli1"], timeout_s=900)[-1]
    listed, headers = _listing(broker)
    total = int(headers["x-total-count"])
    admin = ["--url", broker.url, "--admin-token-file", str(token)]

    def pending(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([workbench_cli, "kbs", "pending", *args, *admin],
                              capture_output=True, text=True, timeout=60)

    first = pending("--limit", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{newest}  pending  cli1/table-key/phi  deadline ")
    assert len(first.stdout.splitlines()) == 1
    assert first.stderr.strip() == (f"{total - 1} older request(s) not shown ({total} in "
                                    f"all): workbench kbs pending --before {newest}")
    rest = pending("--before", newest)
    assert rest.returncode == 0 and rest.stderr == ""
    assert [line.split()[0] for line in rest.stdout.splitlines()] == \
        [a["id"] for a in listed[1:]]
    refused = pending("--limit", "0")
    assert refused.returncode == 1 and "limit" in refused.stderr

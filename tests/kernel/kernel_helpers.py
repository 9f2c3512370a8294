"""A real Confidential Python kernel driven through jupyter_client, and a fake frontend.

``RunningKernel`` starts the committed kernelspec (``kernels/confidential-python``, found
through JUPYTER_PATH) with its provisioner, records every message it sends and receives,
and can open the ``workbench.attestation`` comm and answer on it like the lab extension
does: a real client of the kernel protocol, not a stand-in for our code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from workbench.demo.environment import Hospital, demo_policy
from workbench.kernel.catalog import CATALOG_NAME

ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "confidential-python"
TARGET = "workbench.attestation"
TIMEOUT_S = 120


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    comm: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def ename(self) -> str | None:
        return self.error["ename"] if self.error else None

    @property
    def evalue(self) -> str:
        return self.error["evalue"] if self.error else ""

    def data(self, mime: str) -> Any:
        for result in self.results:
            if mime in result:
                return result[mime]
        return None

    def comm_of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.comm if m.get("type") == kind]


class RunningKernel:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.messages: list[dict[str, Any]] = []
        self.comm_id: str | None = None
        self.manager = KernelManager(kernel_name=KERNEL_NAME)
        with log.open("ab") as handle:
            self.manager.start_kernel(env={**env, "JUPYTER_PATH": str(ROOT)}, stdout=handle,
                                      stderr=handle)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=TIMEOUT_S)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)

    def _send(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg = self.client.session.msg(msg_type, content)
        self.messages.append(msg)
        self.client.shell_channel.send(msg)
        return msg

    def open_comm(self, hello: bool = True) -> None:
        self.comm_id = uuid.uuid4().hex
        self._send("comm_open", {"comm_id": self.comm_id, "target_name": TARGET,
                                 "data": {"v": 1}})
        if hello:
            self.send_comm({"type": "hello", "v": 1, "client": "test-frontend"})

    def send_comm(self, data: dict[str, Any]) -> None:
        assert self.comm_id is not None
        self._send("comm_msg", {"comm_id": self.comm_id, "data": data})

    def execute(self, code: str, *,
                on_comm: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
                on_stdout: Callable[[str], None] | None = None) -> Outcome:
        """Run ``code``; ``on_comm`` may answer each comm message (the reply is sent)."""
        msg_id = self.client.execute(code)
        outcome = Outcome()
        while True:
            msg = self.client.get_iopub_msg(timeout=TIMEOUT_S)
            self.messages.append(msg)
            kind, content = msg["msg_type"], msg["content"]
            mine = msg["parent_header"].get("msg_id") == msg_id
            if kind == "comm_msg" and content.get("comm_id") == self.comm_id:
                outcome.comm.append(content["data"])
                answer = on_comm(content["data"]) if on_comm else None
                if answer is not None:
                    self.send_comm(answer)
            elif not mine:
                continue
            elif kind == "stream":
                setattr(outcome, content["name"],
                        getattr(outcome, content["name"]) + content["text"])
                if on_stdout is not None and content["name"] == "stdout":
                    on_stdout(content["text"])
            elif kind in ("execute_result", "display_data"):
                outcome.results.append(content["data"])
            elif kind == "error":
                outcome.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=TIMEOUT_S)
        self.messages.append(reply)
        outcome.reply = reply["content"]
        return outcome

    def drain_comm(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for a comm message of ``kind`` sent outside any cell (e.g. a status)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            self.messages.append(msg)
            if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("type") == kind:
                return msg["content"]["data"]
        raise AssertionError(f"no comm message of type {kind} within {timeout} s")

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` in the kernel and return it (through JSON)."""
        outcome = self.execute(f"import json as _json\nprint(_json.dumps({expression}))")
        assert outcome.error is None, outcome.evalue
        return json.loads(outcome.stdout.strip().splitlines()[-1])


def approve(by: str = "test-analyst", approved: bool = True
            ) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A frontend that answers every release request the same way."""
    def answer(data: dict[str, Any]) -> dict[str, Any] | None:
        if data.get("type") != "release-request":
            return None
        return {"type": "approval", "v": 1, "request_id": data["request_id"],
                "approved": approved, "by": by}
    return answer


def add_dataset(site: Hospital, name: str, *, policy: dict[str, Any] | None = None,
                rows: int = 40, register: bool = True, **options: Any) -> Path:
    """Seal a small cohort as ``name``, register its keys, list it in the catalog."""
    from workbench.demo.assets import PHI_COLUMNS, build_cohort
    from workbench.sealing.keyring import Keyring
    from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
    from workbench.sealing.table import seal_table

    plain = site.workdir / f"{name}.parquet"
    build_cohort(rows, seed=11).to_parquet(plain)
    keyring = Keyring.open(site.workdir / "hospital.keyring")
    sealed = site.data_dir / f"{name}.sealed.parquet"
    seal_table(plain, sealed, protect=PHI_COLUMNS, keyring=keyring, dataset=name)
    plain.unlink()
    if register:
        with site.admin() as admin:
            for role in (CLINICAL_ROLE, PHI_ROLE):
                resource = table_key(name, role)
                admin.add_resource(resource, keyring.get_key(resource),
                                   policy or demo_policy(site.measurement),
                                   require_approval=options.get("require_approval", False),
                                   approval_timeout_s=options.get("approval_timeout_s"))
    catalog_entry(site, "datasets", name, sealed.name)
    return sealed


def catalog_entry(site: Hospital, section: str, name: str, path: str) -> None:
    catalog = site.data_dir / CATALOG_NAME
    document = json.loads(catalog.read_text())
    document[section][name] = {"path": path, "description": f"test entry {name}"}
    catalog.write_text(json.dumps(document, indent=2))


def audit(site: Hospital, kind: str) -> list[dict[str, Any]]:
    with site.admin() as admin:
        return [r["payload"] for r in admin.audit(kind=kind, limit=1000)]

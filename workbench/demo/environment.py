"""The hospital's side of the demo: a key broker, sealed assets, a policy, a catalog.

``hospital(workdir)`` starts the data owner's key broker (``workbench kbs serve``) on a
free loopback port with a store under ``workdir``, builds the cohort and the model from
real data and publishes both as ``workbench publish`` does (sealed with a fresh keyring,
keys registered under a release policy pinning this installation's kernel measurement,
catalog entries), then writes the kernel configuration. Kernels started with
``environment.kernel_env()`` use all of it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.processes import stop_process

DATASET = "cohort"
MODEL = "risk-model"
SEALED_COHORT = "cohort.sealed.parquet"
SEALED_MODEL = "risk-model.sealed"
KERNEL_NAME = "confidential-python"
BROKER_START_TIMEOUT_S = 60.0
POLICY_ID = "hospital-demo-kernel"
KEYRING_NAME = "hospital.keyring"
COHORT_DESCRIPTION = ("569 breast-mass patients (Wisconsin Diagnostic Breast Cancer data) "
                      "with synthetic identifiers")
MODEL_DESCRIPTION = "malignancy risk, logistic regression (ONNX)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_policy(measurement: str, **overrides: Any) -> dict[str, Any]:
    """The hospital's release policy: this exact kernel code, on a TEE it accepts.

    On machines without TEE hardware the kernel runs in the simulated TEE, which the policy
    must accept explicitly (``allow_simulation``); a hardware deployment pins MRENCLAVE,
    MRTD or the SNP measurement instead.
    """
    policy = {
        "id": POLICY_ID,
        "name": "Confidential Python kernel of the demo installation (simulated TEE accepted)",
        "allowed_tee": ["simulated"],
        "allow_simulation": True,
        "reference_values": {"simulated": {"measurement": measurement}},
    }
    policy.update(overrides)
    return policy


@dataclass
class Hospital:
    workdir: Path
    home: Path
    data_dir: Path
    port: int
    admin_token: str
    measurement: str = ""
    policy: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    steps: list[tuple[str, float]] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "broker.log"

    def kernel_env(self, **extra: str) -> dict[str, str]:
        """Environment for JupyterLab / nbclient / jupyter_client and the kernels they start."""
        env = {**os.environ, "WORKBENCH_HOME": str(self.home), **extra}
        for name in ("WORKBENCH_KBS_URL", "WORKBENCH_DATA_DIR", "WORKBENCH_KERNEL_RUNTIME",
                     "WORKBENCH_AUTO_APPROVE"):
            if name not in extra:
                env.pop(name, None)
        return env

    def admin(self):
        from workbench.kbs.adminclient import AdminClient

        return AdminClient(self.broker_url, self.admin_token)

    def timed(self, name: str, action: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = action()
        self.steps.append((name, time.perf_counter() - start))
        return result

    # -- broker process -------------------------------------------------------------------

    def start_broker(self) -> None:
        env = {**os.environ, "WORKBENCH_HOME": str(self.home),
               "WORKBENCH_KBS_ADMIN_TOKEN": self.admin_token}
        for name in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE"):
            env.pop(name, None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        import httpx

        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WorkbenchError(f"the key broker exited ({self.process.returncode}); see "
                                     f"{self.log}: {self.log.read_text()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.broker_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise WorkbenchError(f"the key broker did not answer on {self.broker_url} within "
                             f"{BROKER_START_TIMEOUT_S:g} s; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=15)

    # -- the hospital's preparation ---------------------------------------------------------

    def prepare(self, rows: int = 569, seed: int = 7, *, require_approval: bool = False,
                approval_timeout_s: int | None = None, policy: dict[str, Any] | None = None
                ) -> None:
        """What a data owner does, through ``workbench publish``'s core: build the assets,
        then publish the cohort and the model (seal, register keys, catalog)."""
        from workbench.attestation.tee.measure import measure_install
        from workbench.attestation.tee.simulated import load_or_create_platform_key
        from workbench.demo.assets import PHI_COLUMNS, build_assets
        from workbench.kernel.config import CONFIG_NAME, write_kernel_config
        from workbench.publish.broker import Release
        from workbench.publish.core import Target, publish
        from workbench.publish.kinds import ASSET_KINDS
        from workbench.publish.model import ModelAsset
        from workbench.publish.table import TableAsset
        from workbench.sealing.keyring import Keyring

        plain = self.workdir / "hospital-plaintext"
        assets = self.timed("hospital: build cohort and model from real data",
                            lambda: build_assets(plain, rows, seed))
        self.card = assets.card_data
        keyring = Keyring.create(self.workdir / KEYRING_NAME)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The simulated TEE's platform key, trusted by the broker sharing this home.
        load_or_create_platform_key(self.home)
        self.measurement = measure_install().measurement
        self.policy = policy or demo_policy(self.measurement)
        release = Release(self.policy, require_approval, approval_timeout_s)
        with self.admin() as admin:
            def target(description: str) -> Target:
                return Target(self.data_dir, keyring.path, admin, release, description)

            self.timed("hospital: publish the cohort (seal with PHI and clinical keys, "
                       "register, catalog)", lambda: publish(
                           ASSET_KINDS["table"],
                           TableAsset.read(assets.cohort, DATASET, PHI_COLUMNS),
                           target(COHORT_DESCRIPTION)))
            self.timed("hospital: publish the model (Tink streaming AEAD, register, catalog)",
                       lambda: publish(ASSET_KINDS["model"],
                                       ModelAsset.read(assets.model, MODEL),
                                       target(MODEL_DESCRIPTION)))
        # The plaintext stays with the hospital; the analyst's side only ever sees the seals.
        shutil.rmtree(plain)
        write_kernel_config(self.home / CONFIG_NAME, broker_url=self.broker_url,
                            runtime="auto", allow_simulation=True,
                            data_dir=str(self.data_dir))

    def repin(self) -> bool:
        """Pin the installation's current measurement in the demo policy (after an upgrade).

        The simulated TEE measures the installed code; when that code changes, the hospital
        re-pins its policy, as it would for a new kernel release. Returns True if it did.
        """
        from workbench.attestation.tee.measure import measure_install

        current = measure_install().measurement
        if current == self.measurement:
            return False
        self.measurement = current
        self.policy = demo_policy(current)
        with self.admin() as admin:
            for info in admin.list_resources():
                if info.get("policy_id") == POLICY_ID:
                    admin.set_policy(info["path"], self.policy,
                                     require_approval=info.get("require_approval"),
                                     approval_timeout_s=info.get("approval_timeout_s"))
        return True


@contextlib.contextmanager
def hospital(workdir: str | Path, rows: int = 569, seed: int = 7, **options: Any
             ) -> Iterator[Hospital]:
    """A running broker and sealed, registered demo assets; the broker stops on exit."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    site = Hospital(workdir=workdir, home=workdir / "home", data_dir=workdir / "data",
                    port=free_port(), admin_token=secrets.token_urlsafe(32))
    site.home.mkdir(parents=True, exist_ok=True)
    try:
        site.timed("hospital: start the key broker", site.start_broker)
        site.prepare(rows, seed, **options)
        yield site
    finally:
        site.stop()


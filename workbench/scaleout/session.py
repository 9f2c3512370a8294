"""A running cluster as the kernel holds it: the CA, the enrollment endpoint, the scheduler,
the worker processes and the Dask client (the kernel's own certificate)."""

from __future__ import annotations

import atexit
import html
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from jwcrypto.jwk import JWK

from workbench.errors import WorkbenchError
from workbench.kernel.runtimes import Runtime
from workbench.processes import stop_process
from workbench.protocol.jwks import JwksProblem, fetch_jwks, jwks_url
from workbench.scaleout.ca import ClusterCA
from workbench.scaleout.enroll import Enrollment, EnrollmentRefused, EnrollmentServer
from workbench.scaleout.launch import start_scheduler, start_worker
from workbench.scaleout.tls import ClusterSecurity

DEFAULT_START_TIMEOUT_S = 120.0


class ClusterStartFailed(WorkbenchError):
    """The cluster did not start; the message says which part and why."""


@dataclass
class WorkerProcess:
    name: str
    process: Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def broker_keys(broker_url: str) -> list[JWK]:
    """The broker's token keys, or the one message a cluster start fails with."""
    try:
        return fetch_jwks(jwks_url(broker_url))
    except JwksProblem as err:
        cause = str(err).split(" (", 1)[-1].rstrip(")") if err.unreachable else str(err)
        raise ClusterStartFailed(
            f"the cluster did not start: cannot reach the key broker at {broker_url} "
            f"({cause}); no worker could attest, so none was started") from None


class Cluster:
    """``wb.cluster(...)``'s value: ``client`` is a Dask client whose workers all attested."""

    def __init__(self, *, n_workers: int, runtime: Runtime, broker_url: str,
                 resources: Sequence[str], allow_simulation: bool,
                 start_timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        if n_workers < 1:
            raise WorkbenchError("n_workers must be at least 1")
        self.runtime = runtime
        self.broker_url = broker_url
        self._allow_simulation = allow_simulation
        self._timeout_s = start_timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="workbench-cluster-"))
        keys = broker_keys(broker_url)  # before anything starts: the broker must answer
        self.ca = ClusterCA()
        self.enrollment = Enrollment(self.ca, lambda: keys, resources)
        self.workers: list[WorkerProcess] = []
        self._scheduler: Popen | None = None
        self.client: Any = None
        self._server = EnrollmentServer(self.enrollment)
        atexit.register(self.close)
        try:
            certificate, key = self.ca.pair("scheduler", "scheduler")
            self._scheduler, self.scheduler_address = start_scheduler(
                {"ca": self.ca.pem, "certificate": certificate, "key": key},
                self.workdir / "scheduler.log")
            self.add_workers(n_workers)
            self._connect()
        except BaseException:
            self.close()
            raise

    @property
    def enroll_url(self) -> str:
        return self._server.url

    def worker_arguments(self, name: str) -> list[str]:
        """The command line of a worker joining this cluster (what the launcher runs)."""
        arguments = ["--enroll", self.enroll_url, "--scheduler", self.scheduler_address,
                     "--broker", self.broker_url, "--runtime", self.runtime.name,
                     "--name", name]
        for resource in self.enrollment.resources:
            arguments += ["--resource", resource]
        return arguments + (["--allow-simulation"] if self._allow_simulation else [])

    def add_workers(self, count: int) -> list[str]:
        """Start ``count`` workers and wait until each attested and got its certificate."""
        first = len(self.workers)
        names = [f"worker-{i}" for i in range(first, first + count)]
        for name in names:
            log = self.workdir / f"{name}.log"
            self.workers.append(WorkerProcess(
                name, start_worker(self.runtime, self.worker_arguments(name), log), log))
        codes = {w.name: w.process.poll for w in self.workers}
        try:
            self.enrollment.wait(names, self._timeout_s,
                                 lambda: {n: poll() for n, poll in codes.items()})
        except EnrollmentRefused as err:
            raise ClusterStartFailed(f"the cluster did not start: {err}") from None
        if self.client is not None:
            self.client.wait_for_workers(len(self.alive()), timeout=self._timeout_s)
        return names

    def _connect(self) -> None:
        from distributed import Client

        certificate, key = self.ca.pair("kernel", "client")
        self.security = ClusterSecurity(self.ca.pem, certificate, key)
        self.client = Client(self.scheduler_address, security=self.security,
                             timeout=self._timeout_s, set_as_default=False)
        self.client.wait_for_workers(len(self.workers), timeout=self._timeout_s)

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process.poll() is None]

    def attestation_ms(self) -> dict[str, float]:
        """How long each worker's attestation took (nonce, evidence, the broker's token)."""
        return {n: e.attest_ms for n, e in self.enrollment.enrolled.items()}

    def close(self) -> None:
        """Stop the client, the workers (their keys go with them) and the scheduler."""
        atexit.unregister(self.close)
        if self.client is not None:
            self.client.close()
            self.client = None
        for worker in self.workers:
            stop_process(worker.process, timeout_s=10)
        if self._scheduler is not None:
            if self._scheduler.stdin is not None:
                self._scheduler.stdin.close()
            stop_process(self._scheduler, timeout_s=10)
            self._scheduler = None
        self._server.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _rows(self) -> list[tuple[str, str, str, str]]:
        enrolled = self.enrollment.enrolled
        return [(w.name, str(w.pid), "running" if w.process.poll() is None else "stopped",
                 (f"{enrolled[w.name].token_status}, {enrolled[w.name].attest_ms:.0f} ms"
                  if w.name in enrolled else "not enrolled")) for w in self.workers]

    def __repr__(self) -> str:
        lines = [f"<Cluster {self.scheduler_address if self._scheduler else '(closed)'}: "
                 f"{len(self.alive())} worker(s) under {self.runtime.name}, TLS 1.3 mutual, "
                 f"CA {self.ca.cluster_id}>"]
        lines += [f"  {n} pid {p} {s}: attested {a}" for n, p, s, a in self._rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{p}</td><td>{s}</td>"
                       f"<td>{html.escape(a)}</td></tr>" for n, p, s, a in self._rows())
        return (f"<p>Dask cluster <code>{html.escape(str(self.scheduler_address))}</code> "
                f"under <b>{html.escape(self.runtime.name)}</b>: TLS 1.3 mutual, "
                f"certificates issued by this kernel after attestation</p>"
                f"<table><tr><th>worker</th><th>pid</th><th>state</th>"
                f"<th>attestation</th></tr>{rows}</table>")

"""A cluster worker process: attest, enroll with the kernel, then serve Dask tasks.

``python -m workbench.scaleout.worker --enroll URL --scheduler ADDRESS --broker URL
--runtime NAME --name NAME --resource R ...`` (the kernel's launcher builds this line; under
gramine-sgx it runs inside the enclave). The worker makes its ephemeral key in memory,
attests to the broker naming the resources the cluster may read, sends the broker's token
with a CSR for the same key to the kernel, and joins the scheduler with the certificate the
kernel issues. Refused, it exits: it never holds a certificate, so it never gets a task.
With no arguments it reads them from ``WORKBENCH_WORKER_ARGS`` (a JSON list), which is how
an enclave, whose command line the manifest fixes, receives them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

# One thread per worker for numeric libraries: parallelism is one worker per core.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import httpx  # noqa: E402
from jwcrypto.jwk import JWK  # noqa: E402

from workbench.brokerclient import BrokerClient, BrokerError, ClientProblem  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.kernel.runtimes import resolve_runtime  # noqa: E402
from workbench.scaleout import worker_args  # noqa: E402
from workbench.scaleout.ca import make_csr, private_pem  # noqa: E402
from workbench.scaleout.enroll import ENROLL_PATH, FAILED_PATH  # noqa: E402

EXIT_ATTESTATION, EXIT_REFUSED = 2, 3
ENROLL_TIMEOUT_S = 30.0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="workbench.scaleout.worker")
    parser.add_argument("--enroll", required=True, help="the kernel's enrollment URL")
    parser.add_argument("--scheduler", required=True, help="tls://host:port")
    parser.add_argument("--broker", required=True, help="the data owner's key broker URL")
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--resource", action="append", default=[])
    parser.add_argument("--allow-simulation", action="store_true")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        # In an enclave the command line is the manifest's: the arguments come in the env.
        try:
            argv = worker_args.from_env(os.environ) or []
        except worker_args.WorkerArgsError as err:
            parser.error(str(err))
    return parser.parse_args(argv)


def _attest(args: argparse.Namespace, client: BrokerClient) -> str:
    try:
        client.attest(args.resource)
    except BrokerError as err:
        reason = (f"cannot reach the key broker at {args.broker}: check that the data "
                  "owner's broker is running and reachable from the workers"
                  if err.kind == ClientProblem.UNREACHABLE else f"attestation failed: {err}")
        _post(args.enroll, FAILED_PATH, {"name": args.name, "reason": reason})
        raise SystemExit(f"worker {args.name}: {reason}") from None
    assert client.session is not None and client.session.token
    return client.session.token


def _post(base: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(base.rstrip("/") + path, json=body, timeout=ENROLL_TIMEOUT_S)


async def _serve(args: argparse.Namespace, security: object) -> None:
    from distributed import Worker

    async with Worker(args.scheduler, security=security, nthreads=1, name=args.name,
                      host=args.host, memory_limit=0, validate=False) as worker:
        await worker.finished()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    from workbench.scaleout.tasks import WorkerKeys, install
    from workbench.scaleout.tls import ClusterSecurity

    try:
        runtime = resolve_runtime(args.runtime, allow_simulation=args.allow_simulation)
        from workbench.attestation.tee import get_provider

        provider = get_provider(runtime.provider)
    except WorkbenchError as err:
        _post(args.enroll, FAILED_PATH, {"name": args.name, "reason": str(err)})
        print(f"worker {args.name}: {err}", file=sys.stderr)
        return EXIT_ATTESTATION
    key = JWK.generate(kty="EC", crv="P-256")  # the worker's ephemeral key, memory only
    client = BrokerClient(args.broker, provider=provider, key=key, verify=False,
                          resources=args.resource)
    started = time.perf_counter()
    token = _attest(args, client)
    attest_ms = (time.perf_counter() - started) * 1000
    signer = key.get_op_key("sign")
    answer = _post(args.enroll, ENROLL_PATH, {"name": args.name, "token": token,
                                              "csr": make_csr(signer, args.name),
                                              "attest_ms": attest_ms})
    if answer.status_code != 200:
        print(f"worker {args.name}: the kernel refused to enroll it: "
              f"{answer.json().get('detail')}", file=sys.stderr)
        return EXIT_REFUSED
    issued = answer.json()
    install(WorkerKeys(client, args.name))
    security = ClusterSecurity(issued["ca"], issued["certificate"], private_pem(signer))
    asyncio.run(_serve(args, security))
    return 0


if __name__ == "__main__":
    sys.exit(main())

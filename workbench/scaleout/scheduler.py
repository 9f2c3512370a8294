"""The cluster's scheduler process: it routes task graphs and never sees data or keys, so it
may run outside a TEE. It reads its certificate, key and the CA (PEM, JSON on stdin: never on
the command line or disk), prints its address on stdout, and stops when stdin closes."""

from __future__ import annotations

import asyncio
import json
import sys

from workbench.scaleout.tls import ClusterSecurity


async def _serve(security: ClusterSecurity, host: str) -> None:
    from distributed import Scheduler

    loop = asyncio.get_running_loop()
    async with Scheduler(host=host, port=0, security=security, dashboard=False,
                         validate=False) as scheduler:
        print(scheduler.address, flush=True)
        # The kernel holds our stdin: its end closing (the kernel gone) ends the cluster.
        await loop.run_in_executor(None, sys.stdin.read)
        await scheduler.close()


def main() -> int:
    issued = json.loads(sys.stdin.readline())
    security = ClusterSecurity(issued["ca"], issued["certificate"], issued["key"])
    asyncio.run(_serve(security, issued.get("host", "127.0.0.1")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

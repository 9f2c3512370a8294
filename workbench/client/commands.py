"""CLI: ``workbench run NOTEBOOK [--out FILE]``, a notebook through a sealed session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from workbench.client import analyst_key
    from workbench.client.run import SESSION_VIOLATION, ask_on_terminal, run_notebook

    notebook = Path(args.notebook)
    key = analyst_key.load(Path(args.analyst_key)) if args.analyst_key else None
    run = run_notebook(notebook, out=Path(args.out) if args.out else None,
                       approve=True if args.approve else ask_on_terminal,
                       broker_fingerprint=args.broker_fingerprint, kernel_name=args.kernel,
                       timeout_s=args.timeout, analyst_key=key)
    done = sum(1 for _cell, result in run.cells if result.status == "ok")
    total = sum(1 for c in run.notebook.cells if c.cell_type == "code")
    where = f"; outputs in {args.out}" if args.out else ""
    print(f"{notebook}: {done} of {total} cells ran sealed{where}", flush=True)
    if run.dropped:
        print(f"{notebook}: {run.dropped} sealed output message(s) were lost on the way "
              "(IOPub gaps): the cells that say so may lack outputs", flush=True)
    if run.failed is not None and run.failed[1].get("ename") == SESSION_VIOLATION:
        print(f"{notebook}: REFUSED: the sealed session was violated: "
              f"{run.failed[1].get('evalue')}", file=sys.stderr, flush=True)
    return 0 if run.ok else 1


def _keygen(args: argparse.Namespace) -> int:
    from workbench.client.analyst_key import generate

    public, fingerprint = generate(Path(args.out))
    print(f"wrote {args.out} (private, 0600) and {public}\nfingerprint {fingerprint}\n"
          f"send {public} to the data owner: workbench kbs analyst add NAME --public-key "
          f"{public.name}", flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="execute a notebook in a confidential kernel locked to this process "
                    "(a sealed session: the Jupyter machinery in between sees ciphertext)")
    run.add_argument("notebook", help="the .ipynb to execute")
    run.add_argument("--out", help="write the executed notebook (outputs in the clear) here")
    run.add_argument("--approve", action="store_true",
                     help="approve the kernel's release requests (recorded by the broker as "
                          "approved in this sealed session); default: ask on the terminal")
    run.add_argument("--broker-fingerprint", metavar="SHA256:...",
                     help="the broker key fingerprint the data owner published (default: "
                          "pin the key on first use in known_brokers.json)")
    run.add_argument("--kernel", help="kernel name (default: the notebook's, or "
                                      "confidential-python)")
    run.add_argument("--timeout", type=float, default=600.0,
                     help="seconds to wait for one cell (default 600)")
    run.add_argument("--analyst-key", metavar="FILE",
                     help="your analyst key (workbench analyst keygen): certifies the session "
                          "and signs your approvals, for resources restricted to analysts")
    run.set_defaults(func=_run)

    analyst = subparsers.add_parser("analyst", help="your analyst key (for sealed sessions)")
    actions = analyst.add_subparsers(dest="analyst_command", metavar="COMMAND")
    actions.required = True
    keygen = actions.add_parser("keygen", help="make an analyst key: FILE (0600) and "
                                               "FILE.pub.jwk for the data owner to register")
    keygen.add_argument("--out", required=True, help="where to write the private key")
    keygen.set_defaults(func=_keygen)

"""The ``workbench`` command.

Each area of the package registers its own subcommands; this module only lists them, so
the CLI grows by adding a row to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from workbench import __version__
from workbench.errors import WorkbenchError

# Modules exposing ``register(subparsers)``; each sets ``func`` on the parsers it adds.
COMMAND_MODULES: tuple[str, ...] = (
    "workbench.sealing.commands",
    "workbench.modelcard.commands",
    "workbench.demo.commands",
    "workbench.kbs.commands",
    "workbench.attestation.commands",
    "workbench.attestation.collateral.commands",
    "workbench.kernel.commands",
    "workbench.client.commands",
    "workbench.publish.commands",
    "workbench.publish.catalog_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Confidential Workbench: seal data, verify evidence, run the key broker.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except WorkbenchError as err:
        print(f"workbench: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def exit_code(status: object) -> int:
    """The process status ``sys.exit(status)`` would give (a message goes to stderr)."""
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    print(status, file=sys.stderr)
    return 1


def run() -> NoReturn:
    """Console entry point: run the command, then leave without native teardown.

    Arrow's and onnxruntime's C++ thread pools can abort the process while the interpreter
    finalizes ("terminate called without an active exception", status -6; apache/arrow#34314),
    after the command has finished and printed its result. A caller would then read a
    published table as a crash. Python's own exit handlers still run and the streams are
    flushed; only the libraries' static destructors are skipped, which hold nothing to save.
    """
    try:
        code = main()
    except SystemExit as stop:
        code = exit_code(stop.code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()

"""The ``workbench`` command.

Each area of the package registers its own subcommands; this module only lists them, so
the CLI grows by adding a row to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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


if __name__ == "__main__":
    sys.exit(main())

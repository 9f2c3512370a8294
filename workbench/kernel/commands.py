"""CLI: ``kernel install`` (the kernelspec) and ``kernel runtime`` (what ``auto`` would pick)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import InputError

KERNEL_NAME = "confidential-python"


def kernelspec_dir() -> Path:
    """The kernelspec shipped with the sources (kernel.json, logos, Gramine template)."""
    import workbench

    return Path(workbench.__file__).resolve().parent.parent / "kernels" / KERNEL_NAME


def _install(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    source = kernelspec_dir()
    if not (source / "kernel.json").is_file():
        raise InputError(f"{source}: kernelspec not found (install from a source checkout)")
    prefix = args.prefix or (None if args.user else sys.prefix)
    where = KernelSpecManager().install_kernel_spec(str(source), KERNEL_NAME, user=args.user,
                                                    prefix=prefix)
    print(f"installed kernelspec '{KERNEL_NAME}' (Confidential Python) in {where}")
    return 0


def _runtime(args: argparse.Namespace) -> int:
    from workbench.kernel.config import config_path, load_kernel_config
    from workbench.kernel.runtimes import AUTO_ORDER, RUNTIMES, Machine, resolve_runtime

    config = load_kernel_config()
    machine = Machine()
    for name in AUTO_ORDER:
        missing = RUNTIMES[name].probe(machine)
        print(f"{name:<12} {'available' if missing is None else 'unavailable: ' + missing}")
    print(f"configuration: runtime={config.runtime}, allow_simulation="
          f"{str(config.allow_simulation).lower()} ({config_path()})")
    chosen = resolve_runtime(config.runtime, allow_simulation=config.allow_simulation,
                             machine=machine)
    print(f"a kernel would start under: {chosen.name} ({chosen.description})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    kernel = subparsers.add_parser("kernel", help="the Confidential Python kernel")
    actions = kernel.add_subparsers(dest="kernel_command", metavar="COMMAND", required=True)
    install = actions.add_parser("install", help="install the kernelspec (default: into this "
                                                 "environment, sys.prefix)")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    install.set_defaults(func=_install)
    runtime = actions.add_parser("runtime", help="which runtime a kernel would start under")
    runtime.set_defaults(func=_runtime)

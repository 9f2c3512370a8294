"""Options the owner's commands share with the broker's admin commands, and their defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.errors import InputError, about


def default_data_dir() -> Path:
    """Where kernels on this machine look for the catalog (kernel.toml's ``data_dir``,
    $WORKBENCH_DATA_DIR, else $WORKBENCH_HOME/data): publishing there needs no flag."""
    from workbench.kernel.config import load_kernel_config

    return load_kernel_config().data_path


def data_dir_of(args: argparse.Namespace, *, create: bool = False) -> Path:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if create and not args.data_dir:
        # The default directory is ours to make; one named on the command line must exist.
        data_dir.mkdir(parents=True, exist_ok=True)
    if not data_dir.is_dir():
        raise InputError(about(data_dir, "data directory does not exist"))
    return data_dir


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory of catalog.json and the sealed files (default: the "
                             "kernel's data_dir, $WORKBENCH_DATA_DIR or $WORKBENCH_HOME/data)")


def add_broker(parser: argparse.ArgumentParser) -> None:
    from workbench.kbs.adminclient import default_url

    parser.add_argument("--url", default=default_url(),
                        help="key broker URL (default: $WORKBENCH_KBS_URL or %(default)s)")
    parser.add_argument("--admin-token-file",
                        help="file holding the admin token (default: $WORKBENCH_KBS_ADMIN_TOKEN)")

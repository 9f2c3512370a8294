"""The kernel's command line: the connection file, and nothing else.

The command line is chosen by whoever starts the process (the host, the operator) and is
not part of any measurement. ipykernel would take any traitlets option there (a log level
that writes every message to the host's log, an echo of every output, ...), so the
confidential kernel takes only what jupyter_client passes: the connection file, as ``-f
PATH`` (the kernelspec's form) or ``--ConnectionFileMixin.connection_file=PATH``. Under
Gramine the command line is fixed in the manifest and the path comes in
``WORKBENCH_CONNECTION_FILE`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from workbench.errors import WorkbenchError

CONNECTION_FILE_ENV = "WORKBENCH_CONNECTION_FILE"
SHORT = "-f"
LONG = "--ConnectionFileMixin.connection_file="
FORMS = f"{SHORT} PATH or {LONG}PATH"


class CommandLineRefused(WorkbenchError):
    """An argument the kernel does not take; the message names it."""


def connection_file(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The connection file the command line (else ``WORKBENCH_CONNECTION_FILE``) names.

    None: neither names one (ipykernel then writes its own). CommandLineRefused names
    every argument that is not the connection file, and a connection file named twice.
    """
    named: list[str] = []
    refused: list[str] = []
    rest = iter(argv)
    for argument in rest:
        if argument == SHORT:
            path = next(rest, None)
            if path is None:
                refused.append(f"{SHORT} without a path")
            else:
                named.append(path)
        elif argument.startswith(LONG) and len(argument) > len(LONG):
            named.append(argument[len(LONG):])
        else:
            refused.append(repr(argument))
    if refused:
        raise CommandLineRefused(
            f"the Confidential Python kernel takes no command-line argument but its "
            f"connection file ({FORMS}); refused: {', '.join(refused)} (the command line "
            "is chosen by whoever starts the kernel and is not measured)")
    if len(named) > 1:
        raise CommandLineRefused(f"the command line names the connection file "
                                 f"{len(named)} times ({', '.join(map(repr, named))}): "
                                 "name it once")
    if named:
        return named[0]
    return environ.get(CONNECTION_FILE_ENV) or None

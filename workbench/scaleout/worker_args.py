"""A worker's arguments when its command line is not the host's to choose.

In a Gramine enclave the command line is fixed by the manifest (measured), so the launcher
passes the worker's arguments as a JSON list of strings in one environment variable, the
only one the manifest lets through. They are the same arguments a process worker gets on
its command line, and as untrusted: the broker's verdict on the worker's evidence, not
its arguments, decides whether it gets keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

WORKER_ARGS_ENV = "WORKBENCH_WORKER_ARGS"


class WorkerArgsError(ValueError):
    """The variable is set but does not hold a JSON list of strings."""


def encode(arguments: list[str]) -> str:
    return json.dumps(list(arguments))


def from_env(environ: Mapping[str, str]) -> list[str] | None:
    """The arguments in ``WORKBENCH_WORKER_ARGS``, or None when it is not set."""
    text = environ.get(WORKER_ARGS_ENV)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise WorkerArgsError(f"{WORKER_ARGS_ENV} is not JSON ({err})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkerArgsError(f"{WORKER_ARGS_ENV} must be a JSON list of strings")
    return value

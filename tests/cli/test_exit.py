"""The ``workbench`` command leaves without the native libraries' teardown.

A C++ static destructor that aborts while the interpreter exits (Arrow's thread pools,
apache/arrow#34314) is reproduced with a libc exit handler that calls ``abort``: registered
the way a static destructor is (``__cxa_atexit``), it runs after Python has finalized.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

ABORT_AT_EXIT = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None)
    libc.__cxa_atexit(ctypes.cast(libc.abort, ctypes.c_void_p), None, None)
    import atexit
    atexit.register(print, "python exit handler ran", flush=True)
    from workbench import cli
    sys.argv = ["workbench", *sys.argv[1:]]
""")


def _python(body: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ABORT_AT_EXIT + body, *args],
                          capture_output=True, text=True, timeout=120)


def test_the_console_script_is_the_entry_that_skips_native_teardown():
    [script] = [e for e in importlib.metadata.entry_points(group="console_scripts")
                if e.name == "workbench"]
    assert script.value == "workbench.cli:run"


def test_a_native_abort_at_exit_kills_the_plain_exit():
    done = _python("sys.exit(cli.main())", "--version")
    assert done.returncode == -6
    assert done.stdout.startswith("workbench ")


@pytest.mark.parametrize("args, code, out, err", [
    (("--version",), 0, "workbench ", ""),
    (("no-such-command",), 2, "", "invalid choice: 'no-such-command'"),
    (("verify", "/nonexistent/quote.bin"), 2, "", "/nonexistent/quote.bin"),
])
def test_run_keeps_status_output_and_exit_handlers(args, code, out, err):
    done = _python("cli.run()", *args)
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith(out)
    assert err in done.stderr
    assert done.stdout.rstrip().endswith("python exit handler ran")

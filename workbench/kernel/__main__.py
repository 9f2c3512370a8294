"""``python -m workbench.kernel -f CONNECTION_FILE``: start the Confidential Python kernel.

Nothing else is taken on the command line (``workbench.kernel.cmdline``); without ``-f`` the
connection file is ``WORKBENCH_CONNECTION_FILE`` (how Gramine's fixed command line gets it).
"""

from __future__ import annotations

# Exit status of a refused command line (as argparse's usage errors).
REFUSED_EXIT = 2


def main() -> None:
    import os
    import sys

    # onnxruntime's telemetry writes a session file to TMPDIR and may report usage: a
    # confidential kernel does neither. It must be off before onnxruntime loads.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from workbench.kernel.app import ConfidentialKernelApp
    from workbench.kernel.cmdline import CommandLineRefused
    from workbench.kernel.kernel import ConfidentialKernel

    try:
        ConfidentialKernelApp.launch_instance(kernel_class=ConfidentialKernel)
    except CommandLineRefused as err:
        # One line, before any socket exists: the kernel does not start.
        print(f"CommandLineRefused: {err}", file=sys.stderr)
        sys.exit(REFUSED_EXIT)


if __name__ == "__main__":
    main()

"""``python -m workbench.kernel -f CONNECTION_FILE``: start the Confidential Python kernel."""

from __future__ import annotations


def main() -> None:
    import os

    # onnxruntime's telemetry writes a session file to TMPDIR and may report usage: a
    # confidential kernel does neither. It must be off before onnxruntime loads.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from workbench.kernel.app import ConfidentialKernelApp
    from workbench.kernel.kernel import ConfidentialKernel

    ConfidentialKernelApp.launch_instance(kernel_class=ConfidentialKernel)


if __name__ == "__main__":
    main()

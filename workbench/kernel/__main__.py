"""``python -m workbench.kernel -f CONNECTION_FILE``: start the Confidential Python kernel."""

from __future__ import annotations


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    from workbench.kernel.kernel import ConfidentialKernel

    IPKernelApp.launch_instance(kernel_class=ConfidentialKernel)


if __name__ == "__main__":
    main()

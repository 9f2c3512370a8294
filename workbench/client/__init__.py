"""The analyst's side of a confidential kernel, for Python clients (what the lab extension is
in the browser): check the kernel one is connected to before trusting it."""

from workbench.client.check import KernelRefused, attestation_over_comm, verify_connection

__all__ = ["KernelRefused", "attestation_over_comm", "verify_connection"]

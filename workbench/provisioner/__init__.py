"""The jupyter_client kernel provisioner that starts Confidential Python under a TEE runtime.

Registered as ``workbench-confidential`` under the ``jupyter_client.kernel_provisioners``
entry point; the kernelspec in ``kernels/confidential-python`` names it.
"""

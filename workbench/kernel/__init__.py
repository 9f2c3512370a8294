"""The confidential kernel: an IPython kernel that attests, asks for keys, and decrypts in memory.

``python -m workbench.kernel -f CONNECTION_FILE`` starts it (the provisioner does, under the
configured runtime). Nothing here is imported by ``import workbench``; the public API in
``workbench/__init__.py`` loads :mod:`workbench.kernel.api` on first use.
"""

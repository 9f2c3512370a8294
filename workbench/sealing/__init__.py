"""Sealing: Parquet modular encryption for tables, Tink streaming AEAD for files.

Decrypted bytes never touch disk on the read path: ``open_table`` and ``open_file`` return
objects in memory. Keys come from a :class:`~workbench.sealing.keys.KeySource`: the data
owner's local keyring here, the attested key broker client inside a kernel.
"""

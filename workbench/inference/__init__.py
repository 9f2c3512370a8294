"""ONNX inference on sealed models: sessions from bytes in memory, card checks, batched prediction.

:func:`workbench.inference.model.load_sealed_model` decrypts a sealed ONNX model with any
``KeySource`` and returns a :class:`~workbench.inference.model.Model` whose ``predict``
takes a DataFrame or an iterator of record batches and keeps memory bounded.
"""

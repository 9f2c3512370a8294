"""ONNX inference on sealed models: sessions from bytes in memory, card checks, batched prediction.

:func:`workbench.inference.model.load_sealed_model` decrypts a sealed ONNX model with any
``KeySource`` and returns a :class:`~workbench.inference.model.Model` whose ``predict``
takes DataFrames, Arrow record batches or ArrayBatch values (or an iterator of them) and
keeps memory bounded. The card (``workbench.modelcard``) says which columns or arrays feed
each input and how each output is returned.
"""

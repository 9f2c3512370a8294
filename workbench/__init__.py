"""Confidential Workbench: attested Jupyter kernels for sealed healthcare data and models.

Inside the confidential kernel (or any Python process)::

    import workbench as wb
    report = wb.attest()                 # evidence + the broker's verdict, rich display
    df = wb.open_dataset("cohort")       # keys released by the broker, decrypted in memory
    model = wb.load_model("risk-model")  # sealed ONNX, decrypted in memory
    scores = model.predict(df)           # onnxruntime, batched, progress bar
    images = wb.open_images("ct-slices") # sealed image set: pixels array + row fields
    wb.cluster(n_workers=2)              # attested Dask workers (docs/cluster.md)
    scores = model.predict(wb.scan_dataset("cohort", engine="dask"))

The API loads on first use (module ``__getattr__``), so ``import workbench`` stays cheap
for the command line.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "attest": "workbench.kernel.api",
    "open_dataset": "workbench.kernel.api",
    "scan_dataset": "workbench.scaleout.api",
    "cluster": "workbench.scaleout.api",
    "open_images": "workbench.kernel.api",
    "scan_images": "workbench.scaleout.api",
    "load_model": "workbench.kernel.api",
    "catalog": "workbench.kernel.api",
    "forget": "workbench.kernel.api",
    "status": "workbench.kernel.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

"""What a Confidential Python kernel loads before its first ``wb.attest()`` is answered: the
remote-kernel benchmark (benchmarks/bench_remote_kernel.py) counts it against a plain
ipykernel. Data and schema libraries load when a dataset, a model or a policy is first used;
importing them at start cost seconds per kernel (jsonschema with rfc3987-syntax alone builds
a grammar at import)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

HEAVY = ("jsonschema", "pandas", "numpy", "pyarrow", "onnxruntime", "sklearn")
PROBE = f"""
import json, sys
import workbench.kernel.kernel
import workbench
workbench.attest, workbench.status, workbench.forget
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_the_kernel_and_wb_attest_load_no_data_or_schema_library():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_scan_default_is_the_inference_default():
    from workbench.inference.batches import DEFAULT_BATCH_ROWS
    from workbench.kernel import api

    assert api.DEFAULT_BATCH_ROWS == DEFAULT_BATCH_ROWS
    default = inspect.signature(api.scan_dataset).parameters["batch_rows"].default
    assert default == DEFAULT_BATCH_ROWS

"""The published OpenAPI description is current, and a fuzzer finds no 5xx in the broker.

schemathesis generates requests from the running broker's own /openapi.json (valid and
invalid ones, with and without the admin token) and sends them to the real server.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from kbs_helpers import ADMIN_TOKEN, ROOT
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from workbench.kbs.openapi import DOC_PATH, openapi_text

# (admin token sent, generation mode, examples per operation). Without the token every admin
# route stops at the gate, so the anonymous run needs few examples.
RUNS = [
    (True, GenerationMode.POSITIVE, 12),
    (True, GenerationMode.NEGATIVE, 12),
    (False, GenerationMode.NEGATIVE, 4),
]


def test_docs_openapi_is_current():
    published = ROOT / DOC_PATH
    assert published.exists(), f"run: workbench kbs openapi --out {DOC_PATH}"
    assert json.loads(published.read_text()) == json.loads(openapi_text()), \
        f"{DOC_PATH} is stale: run `workbench kbs openapi --out {DOC_PATH}`"


def test_served_openapi_matches_the_document(broker):
    served = httpx.get(f"{broker.url}/openapi.json").json()
    assert served == json.loads(openapi_text())
    assert {"/kbs/v0/auth", "/kbs/v0/attest",
            "/kbs/v0/resource/{repository}/{rtype}/{tag}"} <= set(served["paths"])


def fuzz(operation, mode, examples: int, url: str, headers: dict, failures: list[str]) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case) -> None:
        response = case.call(base_url=url, headers=headers)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except Exception as err:
            failures.append(f"{operation.label}: {type(err).__name__}: {err}"[:800])

    try:
        exercise()
    except Unsatisfiable:
        # Nothing to make invalid: an operation without parameters or body has no
        # negative cases (only reached in NEGATIVE mode).
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize(("with_token", "mode", "examples"), RUNS,
                         ids=["admin-valid", "admin-invalid", "anonymous-invalid"])
def test_fuzzing_the_running_broker_finds_no_server_error(broker, with_token, mode, examples):
    schema = schemathesis.openapi.from_url(f"{broker.url}/openapi.json")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if with_token else {}
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        fuzz(result.ok(), mode, examples, broker.url, headers, failures)
        calls += 1
    assert calls >= 18
    assert failures == []

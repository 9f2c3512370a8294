"""The public API stays cheap to import; the catalog and the report refuse what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from jwcrypto.jwk import JWK

import workbench
from workbench.attestation.tee.binding import report_data_for
from workbench.errors import InputError, WorkbenchError
from workbench.kernel.catalog import Catalog, write_catalog
from workbench.kernel.report import MIME_TYPE, AttestationReport


def test_importing_workbench_loads_no_heavy_dependency():
    code = ("import sys, workbench\n"
            "heavy = {'pandas', 'pyarrow', 'onnxruntime', 'ipykernel', 'jupyter_client', "
            "'numpy', 'httpx'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_the_api_is_there_on_first_use():
    assert {"attest", "open_dataset", "scan_dataset", "load_model"} <= set(dir(workbench))
    assert workbench.open_dataset.__module__ == "workbench.kernel.api"
    with pytest.raises(AttributeError, match="no attribute 'open_datasets'"):
        workbench.open_datasets  # noqa: B018


def test_catalog_missing_or_malformed_is_named(tmp_path):
    with pytest.raises(InputError, match="no data catalog here") as missing:
        Catalog.load(tmp_path)
    assert str(missing.value).startswith(str(tmp_path / "catalog.json"))
    (tmp_path / "catalog.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a workbench catalog"):
        Catalog.load(tmp_path)
    (tmp_path / "catalog.json").write_text(json.dumps(
        {"format": "workbench-catalog/1", "datasets": {"../etc": {"path": "x"}}}))
    with pytest.raises(InputError, match=r"invalid resource name '\.\./etc'"):
        Catalog.load(tmp_path)


def test_catalog_maps_names_to_their_broker_resources(tmp_path):
    write_catalog(tmp_path, datasets={"cohort": {"path": "c.parquet"}},
                  models={"risk": {"path": "r.sealed"}})
    catalog = Catalog.load(tmp_path)
    assert catalog.get("dataset", "cohort").resources == ("cohort/table-key/clinical",
                                                          "cohort/table-key/phi")
    assert catalog.resources()[-1] == "risk/file-keyset/main"
    with pytest.raises(WorkbenchError, match=r"no model named 'cohort' .* \(available: risk\)"):
        catalog.get("model", "cohort")


def _report(report_data: bytes, key: dict) -> AttestationReport:
    claims = {"iss": "http://broker", "iat": 1_700_000_000, "exp": 1_700_000_300,
              "submods": {"kernel": {
                  "ear.status": "affirming", "ear.appraisal-policy-id": "p",
                  "ear.workbench.rules": [{"name": "r", "passed": True, "reason": "ok"}],
                  "ear.veraison.annotated-evidence": {
                      "tee": "sgx", "simulated": False, "report_data": report_data.hex(),
                      "tcb_status": "UpToDate",
                      "claims": {"mrenclave": "aa" * 32, "mrsigner": "bb" * 32, "isvsvn": 3,
                                 "debug": False}}}}}
    return AttestationReport(runtime="gramine-sgx", broker="http://broker", token="t.t.t",
                             claims=claims, evidence=b"quote", nonce="n-1",
                             nonce_issued_at=datetime.now(UTC), tee_pubkey=key)


def test_report_binding_is_checked_against_this_kernels_key():
    key = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    other = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    good = _report(report_data_for("n-1", key), key)
    assert good.bound and good.summary()["binding"]["bound"] is True
    assert not _report(report_data_for("n-1", other), key).bound
    assert not _report(report_data_for("n-2", key), key).bound
    summary = good.summary()
    assert (summary["measurement"], summary["signer"], summary["svn"]) == ("aa" * 32, "bb" * 32,
                                                                           3)
    assert summary["tcb_status"] == "UpToDate" and summary["simulated"] is False
    bundle = good._repr_mimebundle_()
    assert bundle[MIME_TYPE]["evidence"] == "cXVvdGU=" and "SIMULATED" not in bundle["text/html"]
    assert "NOT BOUND" in str(_report(b"\0" * 64, key))

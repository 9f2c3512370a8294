"""A kernel with no frontend (as under nbclient): attestation report, non-interactive
approval and its audit record, and every bad input as one clear error in the cell."""

from __future__ import annotations

import shutil

import pytest
from kernel_helpers import add_dataset, audit, catalog_entry

from workbench.demo.environment import SEALED_COHORT, SEALED_MODEL, demo_policy

MIME = "application/vnd.workbench.attestation+json"


@pytest.fixture(autouse=True)
def _forget(kernel):
    """Each test starts without released keys or a broker session."""
    outcome = kernel.execute("import workbench as wb\nwb.forget()")
    assert outcome.error is None, outcome.evalue


DEMO_RESOURCES = ["cohort/table-key/clinical", "cohort/table-key/phi",
                  "risk-model/file-keyset/main"]


def test_attest_displays_the_brokers_verdict(kernel, site):
    # Other tests add datasets whose policies refuse; name the demo's own resources.
    outcome = kernel.execute(f"report = wb.attest(resources={DEMO_RESOURCES!r})\nreport")
    assert outcome.error is None, outcome.evalue
    payload = outcome.data(MIME)
    summary = payload["summary"]
    assert payload["tee"] == "simulated" and summary["simulated"] is True
    assert payload["broker"] == site.broker_url and payload["token"].count(".") == 2
    assert summary["measurement"] == site.measurement
    assert summary["status"] == "warning" and summary["policy_id"] == site.policy["id"]
    assert summary["binding"]["bound"] is True
    assert {r["name"] for r in summary["rules"] if not r["passed"]} == set()
    assert "simulated.measurement" in {r["name"] for r in summary["rules"]}
    assert summary["resources"]["cohort/table-key/clinical"]["status"] == "warning"
    assert summary["issuer"] == site.broker_url
    html = outcome.data("text/html")
    assert "SIMULATED TEE" in html and "simulated.measurement" in html
    assert "report data binds the broker's nonce" in outcome.data("text/plain")
    assert sorted(summary["resources"]) == DEMO_RESOURCES


def test_attest_names_every_catalog_resource_by_default(kernel):
    outcome = kernel.execute("from workbench.kernel.state import current_state\n"
                             "print(len(current_state().catalog().resources()), "
                             "len(wb.attest().resources))")
    assert outcome.error is None, outcome.evalue
    catalogued, named = outcome.stdout.split()
    assert catalogued == named and int(named) >= 3


def test_release_without_a_frontend_says_how_to_approve(kernel, site):
    before = len(audit(site, "release"))
    outcome = kernel.execute("wb.open_dataset('cohort', columns=['mean_radius'])")
    assert outcome.ename == "ApprovalRequired"
    assert "cohort/table-key/clinical" in outcome.evalue
    assert "pass approve=True or set WORKBENCH_AUTO_APPROVE=1" in outcome.evalue
    assert outcome.error["traceback"] == [outcome.error["traceback"][0]]  # one line, no frames
    assert len(audit(site, "release")) == before


def test_approve_true_releases_only_the_keys_needed_and_is_audited(kernel, site):
    outcome = kernel.execute(
        "df = wb.open_dataset('cohort', columns=['mean_radius', 'diagnosis'], approve=True)\n"
        "print(df.shape, sorted(df['diagnosis'].unique()))\n"
        "print([r['resource'] for r in wb.status()['released']])")
    assert outcome.error is None, outcome.evalue
    assert "(569, 2) ['B', 'M']" in outcome.stdout
    assert "['cohort/table-key/clinical']" in outcome.stdout  # the PHI key stays in the broker
    record = audit(site, "release")[-1]
    assert record["resource"] == "cohort/table-key/clinical"
    assert record["analyst_approval"] == {"mode": "non-interactive", "by": "approve=True"}


def test_identifiers_need_the_phi_key(kernel, site):
    outcome = kernel.execute("df = wb.open_dataset('cohort', approve=True)\n"
                             "print(df.shape, df['mrn'].str.startswith('MRN').all())")
    assert outcome.error is None, outcome.evalue
    assert "(569, 37) True" in outcome.stdout
    released = {r["resource"] for r in audit(site, "release")}
    assert {"cohort/table-key/phi", "cohort/table-key/clinical"} <= released


def test_scores_every_patient_from_a_scan(kernel):
    outcome = kernel.execute(
        "model = wb.load_model('risk-model', approve=True)\n"
        "scan = wb.scan_dataset('cohort', batch_rows=100, columns=model.features, "
        "approve=True)\n"
        "scores = model.predict(scan, progress=False)\n"
        "whole = model.predict(wb.open_dataset('cohort', columns=model.features, approve=True),"
        " progress=False)\n"
        "print(len(scan), len(scores), bool((scores.to_numpy() == whole.to_numpy()).all()))")
    assert outcome.error is None, outcome.evalue
    assert outcome.stdout.split() == ["569", "569", "True"]


def test_unknown_dataset_lists_the_available_ones(kernel):
    outcome = kernel.execute("wb.open_dataset('cohrt', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "no dataset named 'cohrt'" in outcome.evalue and "(available: " in outcome.evalue
    assert "cohort" in outcome.evalue.split("(available: ")[1]


def test_unknown_model_lists_the_available_ones(kernel):
    outcome = kernel.execute("wb.load_model('risk', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "no model named 'risk'" in outcome.evalue and "risk-model" in outcome.evalue


def test_unknown_columns_are_named_with_the_real_ones(kernel):
    outcome = kernel.execute("wb.open_dataset('cohort', columns=['mean_radius', 'tumour'], "
                             "approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "dataset 'cohort' has no column(s) tumour" in outcome.evalue
    assert "mean_radius" in outcome.evalue.split("(columns: ")[1]


def test_model_feature_mismatch_names_missing_and_mistyped_columns(kernel):
    outcome = kernel.execute(
        "model = wb.load_model('risk-model', approve=True)\n"
        "df = wb.open_dataset('cohort', columns=model.features, approve=True)\n"
        "df = df.drop(columns=['mean_radius', 'worst_area'])\n"
        "df['mean_texture'] = df['mean_texture'].astype(str)\n"
        "model.predict(df)")
    assert outcome.ename == "FeatureMismatch"
    assert "missing column(s) mean_radius, worst_area" in outcome.evalue
    assert "wrong type mean_texture (" in outcome.evalue


def test_a_table_swapped_for_another_datasets_is_named(kernel, site):
    # The catalog says 'ward-7' lives in a file; that file is in fact the cohort's.
    shutil.copy(site.data_dir / SEALED_COHORT, site.data_dir / "ward-7.sealed.parquet")
    catalog_entry(site, "datasets", "ward-7", "ward-7.sealed.parquet")
    before = len(audit(site, "release"))
    outcome = kernel.execute("wb.open_dataset('ward-7', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "ward-7.sealed.parquet" in outcome.evalue
    assert "key 'cohort/table-key/clinical'" in outcome.evalue
    assert "swapped or mislabelled" in outcome.evalue
    assert len(audit(site, "release")) == before  # nobody else's key was asked for


def test_a_model_swapped_for_another_file_is_named(kernel, site):
    shutil.copy(site.data_dir / SEALED_MODEL, site.data_dir / "triage.sealed")
    catalog_entry(site, "models", "triage", "triage.sealed")
    outcome = kernel.execute("wb.load_model('triage', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "was sealed as resource 'risk-model', not 'triage'" in outcome.evalue


def test_policy_refusal_lists_the_failed_rules(kernel, site):
    wrong = demo_policy("0" * 96, id="other-kernel-only")
    add_dataset(site, "trial-arm", policy=wrong)
    outcome = kernel.execute("wb.open_dataset('trial-arm', approve=True)")
    assert outcome.ename == "ReleaseRefused"
    assert "refused to release trial-arm/table-key/clinical" in outcome.evalue
    assert "simulated.measurement: measurement" in outcome.evalue
    assert "is not a reference value of the policy" in outcome.evalue
    refusal = audit(site, "refusal")[-1]
    assert refusal["problem"] == "PolicyDeny" and refusal["failed_rules"] == [
        "simulated.measurement"]


def test_unregistered_resource_is_refused_by_name(kernel, site):
    add_dataset(site, "unregistered", register=False)
    outcome = kernel.execute("wb.open_dataset('unregistered', approve=True)")
    assert outcome.ename == "ReleaseRefused"
    assert "unregistered/table-key/clinical" in outcome.evalue

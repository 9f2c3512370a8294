"""Kernels whose settings come from the environment: auto-approval, an unreachable broker."""

from __future__ import annotations

from kernel_helpers import audit

from workbench.demo.environment import free_port


def test_auto_approve_is_audited_as_non_interactive(start_kernel, site):
    kernel = start_kernel(WORKBENCH_AUTO_APPROVE="1")
    outcome = kernel.execute("import workbench as wb\nm = wb.load_model('risk-model')\n"
                             "print(m.features[:2])")
    assert outcome.error is None, outcome.evalue
    assert "['mean_radius', 'mean_texture']" in outcome.stdout
    record = audit(site, "release")[-1]
    assert record["resource"] == "risk-model/file-keyset/main"
    assert record["analyst_approval"] == {"mode": "non-interactive",
                                          "by": "WORKBENCH_AUTO_APPROVE=1"}


def test_unreachable_broker_names_the_url_and_what_to_check(start_kernel):
    url = f"http://127.0.0.1:{free_port()}"
    kernel = start_kernel(WORKBENCH_KBS_URL=url)
    for code in ("import workbench as wb\nwb.attest()", "wb.open_dataset('cohort')"):
        outcome = kernel.execute(code)
        assert outcome.ename == "BrokerUnreachable"
        assert f"cannot reach the key broker at {url}" in outcome.evalue
        assert "`workbench kbs serve`" in outcome.evalue
        assert "WORKBENCH_KBS_URL" in outcome.evalue and "kernel.toml" in outcome.evalue

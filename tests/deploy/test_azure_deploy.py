"""deploy/kubernetes/aks (AKS with a confidential VM node pool) and deploy/azure/aci (a
confidential container group on ACI), checked offline like the other deployment files:
the AKS values merged onto the base values the way Helm merges them, the kernel pod
rendered by KubeSpawner's own make_pod and validated against the Kubernetes schema, with
the vTPM and nothing broader; the ACI template's confidential SKU, and its CCE policy's
hash from ``workbench policy cce-hash`` equal to the host_data a policy then pins.
Not exercised: no AKS cluster, no ACI, no Helm, no az confcom (see docs/deploy.md)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import test_kubernetes as base_checks
import yaml
from test_kubernetes import KUBERNETES_VERSIONS, VALUES, documents, render_pod

from workbench.attestation.appraise import load_policy

ROOT = Path(__file__).resolve().parents[2]
AKS = ROOT / "deploy" / "kubernetes" / "aks"
ACI_TEMPLATE = ROOT / "deploy" / "azure" / "aci" / "workbench-gateway.json"
TPM_DEVICE = "/dev/tpmrm0"
# A CCE policy as `az confcom acipolicygen` writes it (Rego; the real one lists the
# containers, their commands, environment and mounts).
REGO = (b'package policy\n\napi_version := "0.10.0"\nframework_version := "0.2.3"\n\n'
        b'containers := [{"id": "registry.example.org/confidential-workbench/gateway:0.1.0"}]\n')


def helm_merge(base: Any, overlay: Any) -> Any:
    """Values files merged as Helm merges them: maps key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = helm_merge(base[key], value) if key in base else value
        return merged
    return copy.deepcopy(overlay)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    (base,) = documents(VALUES)
    (overlay,) = documents(AKS / "jupyterhub-values-aks.yaml")
    return helm_merge(base, overlay)


@pytest.fixture(scope="module")
def plugin() -> dict[str, Any]:
    (daemonset,) = documents(AKS / "tpm-device-plugin.yaml")
    return daemonset


@pytest.fixture(scope="module")
def pod(values) -> dict[str, Any]:
    return render_pod(values, "azure-cvm")


# -- AKS ---------------------------------------------------------------------------------

def test_aks_values_are_chart_values_and_kubespawner_settings(values):
    base_checks.test_values_use_only_keys_the_chart_accepts(values)
    profiles = values["singleuser"]["profileList"]
    assert [p["slug"] for p in profiles] == ["azure-cvm"]  # Helm replaces the list
    from kubespawner import KubeSpawner

    traits = set(KubeSpawner.class_trait_names(config=True))
    (profile,) = profiles
    assert set(profile) <= base_checks.PROFILE_KEYS
    assert set(profile["kubespawner_override"]) <= traits


def test_helm_merge_keeps_base_settings(values):
    assert values["singleuser"]["extraEnv"]["WORKBENCH_KBS_URL"] == \
        "http://workbench-kbs.workbench.svc:8080"
    assert values["hub"]["config"]["JupyterHub"]["admin_access"] is False


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kernel_pod_and_the_device_plugin_validate(pod, plugin, version):
    kubernetes_validate.validate(pod, version, strict=True)
    kubernetes_validate.validate(plugin, version, strict=True)


def test_the_kernel_pod_gets_the_vtpm_and_nothing_broader(pod, values):
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["squat.ai/tpmrm"] == "1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKBENCH_KERNEL_RUNTIME"] == "azure-cvm"
    assert "WORKBENCH_ALLOW_SIMULATION" not in env
    # No host paths, no privileged mode, no added capabilities, no host namespaces: the
    # device plugin adds /dev/tpmrm0 and its device-cgroup rule, nothing else.
    assert not any("hostPath" in v for v in spec.get("volumes", []))
    assert [v["name"] for v in spec["volumes"]] == \
        [v["name"] for v in values["singleuser"]["storage"]["extraVolumes"]]
    for context in (spec.get("securityContext") or {}, container.get("securityContext") or {}):
        assert not context.get("privileged")
        assert not (context.get("capabilities") or {}).get("add")
    assert not any(spec.get(k) for k in ("hostPID", "hostIPC", "hostNetwork"))
    assert "runtimeClassName" not in spec  # the node is the confidential VM


def test_the_device_plugin_serves_the_pool_the_pod_is_placed_on(pod, plugin):
    plugin_spec = plugin["spec"]["template"]["spec"]
    assert plugin_spec["nodeSelector"] == pod["spec"]["nodeSelector"] == \
        {"confidential-workbench/tee": "azure-cvm"}
    assert plugin_spec["tolerations"] == pod["spec"]["tolerations"]
    (container,) = plugin_spec["containers"]
    (flag, device) = container["args"]
    assert flag == "--device"
    config = yaml.safe_load(device)
    paths = [p["path"] for group in config["groups"] for p in group["paths"]]
    assert paths == [TPM_DEVICE]
    (limit,) = [k for k in pod["spec"]["containers"][0]["resources"]["limits"]
                if k.startswith("squat.ai/")]
    assert limit == f"squat.ai/{config['name']}"  # the plugin's default --domain
    # The plugin sees the device node and its socket directory only, unprivileged.
    volumes = {v["name"]: v["hostPath"] for v in plugin_spec["volumes"]}
    assert volumes == {"device-plugins": {"path": "/var/lib/kubelet/device-plugins",
                                          "type": "Directory"},
                       "tpmrm": {"path": TPM_DEVICE, "type": "CharDevice"}}
    context = container["securityContext"]
    assert context["privileged"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert re.fullmatch(r"ghcr\.io/squat/generic-device-plugin:[0-9a-f]{7,}", container["image"])


def test_the_runtime_is_one_the_kernel_knows():
    from workbench.kernel.runtimes import RUNTIMES

    assert RUNTIMES["azure-cvm"].provider == "azure-vtpm"


# -- ACI ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads(ACI_TEMPLATE.read_text())


def _group(template: dict[str, Any]) -> dict[str, Any]:
    (group,) = template["resources"]
    assert group["type"] == "Microsoft.ContainerInstance/containerGroups"
    return group


def test_the_aci_group_is_confidential_and_names_only_its_parameters(template):
    group = _group(template)
    properties = group["properties"]
    assert properties["sku"] == "Confidential"
    assert "ccePolicy" in properties["confidentialComputeProperties"]
    assert properties["ipAddress"]["type"] == "Private"
    used = set(re.findall(r"parameters\('([^']+)'\)", json.dumps(template)))
    assert used == set(template["parameters"])


def test_the_aci_container_is_the_gateway_with_no_secret_written_down(template):
    from workbench.kernel.runtimes import RUNTIMES

    sys.path.insert(0, str(ROOT / "deploy" / "kernel-gateway"))
    import kernel_gateway_config as gateway

    (container,) = _group(template)["properties"]["containers"]
    env = {e["name"]: e for e in container["properties"]["environmentVariables"]}
    assert set(env) <= set(gateway.SETTINGS) | set(gateway.KERNEL_ENVIRONMENT)
    required = {name for name, (default, _) in gateway.SETTINGS.items() if default is None}
    assert required <= set(env)
    assert set(env["WORKBENCH_GATEWAY_TOKEN"]) == {"name", "secureValue"}
    assert template["parameters"]["gatewayToken"]["type"] == "securestring"
    assert env["WORKBENCH_KERNEL_RUNTIME"]["value"] in RUNTIMES
    assert "WORKBENCH_ALLOW_SIMULATION" not in env


def _cce_hash(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "policy", "cce-hash", "--json",
                           str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_unrendered_template_has_no_policy_to_pin():
    result = _cce_hash(ACI_TEMPLATE)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "workbench-gateway.json: CCE policy: not base64 (ACI's ccePolicy is standard base64)")


def test_the_rendered_groups_host_data_is_what_the_policy_pins(template, tmp_path):
    rendered = copy.deepcopy(template)
    policy_b64 = base64.b64encode(REGO).decode()
    _group(rendered)["properties"]["confidentialComputeProperties"]["ccePolicy"] = policy_b64
    path = tmp_path / "workbench-gateway.json"
    path.write_text(json.dumps(rendered))
    result = _cce_hash(path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # SEV-SNP HOST_DATA of the utility VM: SHA-256 of the decoded policy, as ACI sets it.
    expected = hashlib.sha256(REGO).hexdigest()
    assert out["form"] == "arm" and out["host_data"] == expected
    policy = load_policy({"id": "aci-gateway", "allowed_tee": ["snp"],
                          **out["policy_snippet"]})
    assert policy.reference_values["snp"]["host_data"] == (expected,)

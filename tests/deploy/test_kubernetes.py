"""deploy/kubernetes: every manifest parses, every Kubernetes object validates against the
Kubernetes schema (kubernetes-validate, offline, strict), the pieces agree with each other,
and no secret is written down. Helm is not available here, so the Zero to JupyterHub values
are checked against the keys the chart accepts, and each profile is rendered into the Pod
KubeSpawner would create (its own ``make_pod``) and validated as a Pod."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
BROKER = KUBE / "broker"
VALUES = KUBE / "jupyterhub-values.yaml"
# The chart (4.x) needs Kubernetes >= 1.32; check the oldest and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
# The dask-kubernetes operator's DaskCluster: its pod specs are checked in tests/cluster.
NOT_KUBERNETES_OBJECTS = {"kustomize.config.k8s.io/v1beta1", "kubernetes.dask.org/v1"}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEK|PRIVATE|CREDENTIAL", re.IGNORECASE)

# The chart's objects that refuse unknown keys (``additionalProperties: false`` in
# values.schema.yaml of jupyterhub/zero-to-jupyterhub-k8s, chart 4.x), as far as these values
# use them: a key not listed here makes `helm install` fail.
CHART_CLOSED: dict[tuple[str, ...], set[str]] = {
    (): {"cull", "custom", "debug", "enabled", "fullnameOverride", "global", "httpRoute", "hub",
         "imagePullSecret", "imagePullSecrets", "ingress", "nameOverride", "prePuller", "proxy",
         "rbac", "scheduling", "singleuser"},
    ("hub",): {"activeServerLimit", "allowNamedServers", "annotations", "args",
               "authenticatePrometheus", "baseUrl", "command", "concurrentSpawnLimit", "config",
               "consecutiveFailureLimit", "containerSecurityContext", "cookieSecret", "db",
               "deploymentStrategy", "existingSecret", "extraConfig", "extraContainers",
               "extraEnv", "extraFiles", "extraPodSpec", "extraVolumeMounts", "extraVolumes",
               "fsGid", "image", "initContainers", "labels", "lifecycle", "livenessProbe",
               "loadRoles", "namedServerLimitPerUser", "networkPolicy", "nodeSelector", "pdb",
               "podSecurityContext", "readinessProbe", "redirectToServer", "resources",
               "revisionHistoryLimit", "service", "serviceAccount", "services",
               "shutdownOnLogout", "templatePaths", "templateVars", "tolerations"},
    ("proxy",): {"annotations", "chp", "deploymentStrategy", "https", "labels", "secretSync",
                 "secretToken", "service", "traefik"},
    ("proxy", "https"): {"enabled", "hosts", "letsencrypt", "manual", "secret", "type"},
    ("proxy", "https", "letsencrypt"): {"acmeServer", "contactEmail"},
    ("singleuser",): {"allowPrivilegeEscalation", "cloudMetadata", "cmd", "cpu", "defaultUrl",
                      "events", "extraAnnotations", "extraContainers", "extraEnv", "extraFiles",
                      "extraLabels", "extraNodeAffinity", "extraPodAffinity",
                      "extraPodAntiAffinity", "extraPodConfig", "extraResource",
                      "extraTolerations", "fsGid", "image", "initContainers", "lifecycleHooks",
                      "memory", "networkPolicy", "networkTools", "nodeSelector",
                      "podNameTemplate", "profileList", "serviceAccountName", "startTimeout",
                      "storage", "uid"},
    ("singleuser", "image"): {"name", "pullPolicy", "pullSecrets", "tag"},
    ("singleuser", "storage"): {"capacity", "dynamic", "extraLabels", "extraVolumeMounts",
                                "extraVolumes", "homeMountPath", "static", "type"},
    ("singleuser", "networkPolicy"): {"allowedIngressPorts", "egress", "egressAllowRules",
                                      "enabled", "ingress", "interNamespaceAccessLabels"},
    ("singleuser", "networkPolicy", "egressAllowRules"): {
        "cloudMetadataServer", "dnsPortsCloudMetadataServer", "dnsPortsKubeSystemNamespace",
        "dnsPortsPrivateIPs", "nonPrivateIPs", "privateIPs"},
    ("singleuser", "cloudMetadata"): {"blockWithIptables", "ip"},
    ("singleuser", "cpu"): {"guarantee", "limit"},
    ("singleuser", "memory"): {"guarantee", "limit"},
}
# Objects the chart passes through as they are (traitlets config, environment, labels).
CHART_OPEN = {("hub", "config"), ("hub", "extraConfig"), ("hub", "extraEnv"),
              ("singleuser", "extraEnv"), ("singleuser", "extraLabels")}
# What KubeSpawner reads from a profileList entry.
PROFILE_KEYS = {"display_name", "slug", "description", "default", "kubespawner_override",
                "profile_options"}
HARDWARE_RUNTIMES = {"gramine-sgx", "cvm"}


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: no YAML documents"
    assert all(isinstance(d, dict) for d in docs), f"{path}: a document is not a mapping"
    return docs


def broker_objects() -> dict[str, dict[str, Any]]:
    objects = {}
    for path in sorted(BROKER.glob("*.yaml")):
        for doc in documents(path):
            objects[doc["kind"]] = doc
    return objects


@pytest.fixture(scope="module")
def broker() -> dict[str, dict[str, Any]]:
    return broker_objects()


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    (doc,) = documents(VALUES)
    return doc


def walk(node: Any, path: tuple = ()):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


# -- every manifest -------------------------------------------------------------------------

def test_every_manifest_parses():
    paths = sorted(KUBE.rglob("*.yaml"))
    assert {p.relative_to(KUBE).as_posix() for p in paths} >= {
        "jupyterhub-values.yaml", "broker/kustomization.yaml", "broker/deployment.yaml",
        "broker/service.yaml", "broker/configmap.yaml", "broker/networkpolicy.yaml",
        "aks/jupyterhub-values-aks.yaml", "aks/tpm-device-plugin.yaml"}
    for path in paths:
        documents(path)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_objects_validate_against_the_schema(version):
    checked = []
    for path in sorted(KUBE.rglob("*.yaml")):
        for doc in documents(path):
            if "apiVersion" not in doc or doc["apiVersion"] in NOT_KUBERNETES_OBJECTS:
                continue
            kubernetes_validate.validate(doc, version, strict=True)
            checked.append(doc["kind"])
    assert sorted(checked) == ["ConfigMap", "DaemonSet", "Deployment", "NetworkPolicy",
                               "NetworkPolicy", "NetworkPolicy", "Service"]


def test_the_schema_check_catches_a_mistake(broker):
    """The validator is not a rubber stamp: a misspelt field fails."""
    import copy

    deployment = copy.deepcopy(broker["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(broker["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] = {"secret": "x"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_no_secret_is_written_down():
    for path in sorted(KUBE.rglob("*.yaml")):
        for doc in documents(path):
            assert doc.get("kind") != "Secret", f"{path}: a Secret object (reference it instead)"
            for where, node in walk(doc):
                if isinstance(node, dict) and "name" in node and "value" in node and \
                        SECRET_WORDS.search(str(node["name"])):
                    raise AssertionError(f"{path}: {'.'.join(map(str, where))} sets "
                                         f"{node['name']} literally; use valueFrom.secretKeyRef")
                if isinstance(node, str) and re.search(r"://[^/@\s]*:[^/@\s]*@", node):
                    raise AssertionError(f"{path}: {'.'.join(map(str, where))}: a URL with a "
                                         "password")


# -- the broker -----------------------------------------------------------------------------

def test_kustomization_lists_every_broker_manifest():
    (kustomization,) = documents(BROKER / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in BROKER.glob("*.yaml")} - {"kustomization.yaml"}
    assert kustomization["namespace"] == "workbench"


def _container(broker) -> dict[str, Any]:
    (container,) = broker["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _broker_config(broker, tmp_path: Path):
    from workbench.kbs.config import load_config

    path = tmp_path / "kbs.toml"
    path.write_text(broker["ConfigMap"]["data"]["kbs.toml"])
    return load_config(path)


def test_the_broker_config_is_valid_for_the_broker(broker, tmp_path):
    config = _broker_config(broker, tmp_path)
    url = urlsplit(config.db)
    assert url.scheme == "postgresql+psycopg"
    assert url.password is None  # the password comes from PGPASSWORD (a Secret)
    assert "sslmode=verify-full" in url.query
    assert config.host == "0.0.0.0"  # noqa: S104 (inside the pod; the Service fronts it)
    port = {p["name"]: p["containerPort"] for p in _container(broker)["ports"]}["http"]
    assert config.port == port


def test_the_broker_command_line_is_one_the_cli_accepts(broker):
    from workbench.cli import build_parser

    container = _container(broker)
    args = build_parser().parse_args(container["args"])
    assert container["command"] == ["workbench"]
    assert args.command == "kbs" and args.func.__name__ == "_serve"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secrets = next(v for v in broker["Deployment"]["spec"]["template"]["spec"]["volumes"]
                   if v["name"] == "secrets")
    files = {item["path"]: source["secret"]["name"]
             for source in secrets["projected"]["sources"] for item in source["secret"]["items"]}
    assert args.kek_file == f"{mounts['secrets']}/kek" and files["kek"] == "workbench-kbs-kek"
    assert args.admin_token_file == f"{mounts['secrets']}/admin-token"
    assert files["admin-token"] == "workbench-kbs-admin"
    assert args.config == mounts["config"]


def test_the_database_password_comes_from_a_secret(broker):
    env = {e["name"]: e for e in _container(broker)["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "workbench-kbs-db",
                                                             "key": "password"}


def test_service_and_network_policy_select_the_broker_pods(broker):
    labels = broker["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert broker["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = broker["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    named = {p["name"] for p in _container(broker)["ports"]}
    assert all(p["targetPort"] in named for p in service["ports"])
    policy = broker["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert all(port["port"] in named for rule in policy["ingress"] for port in rule["ports"])


def test_the_broker_runs_unprivileged(broker):
    pod = broker["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    context = _container(broker)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True


# -- the hub's values -----------------------------------------------------------------------

def test_values_use_only_keys_the_chart_accepts(values):
    for path, node in walk(values):
        if not isinstance(node, dict) or any(isinstance(p, int) for p in path):
            continue
        if path in CHART_CLOSED:
            unknown = set(node) - CHART_CLOSED[path]
            assert not unknown, f"{'.'.join(path) or '(top)'}: keys the chart refuses: {unknown}"
        elif path[:-1] in CHART_CLOSED or path in CHART_OPEN:
            assert path in CHART_CLOSED or path in CHART_OPEN, \
                f"{'.'.join(path)}: not in the test's table of chart keys: add it from the schema"
    for name in values["hub"]["config"]:
        assert name[:1].isupper(), f"hub.config.{name}: the chart takes class names only"


def test_values_catch_a_misspelt_key(values):
    import copy

    broken = copy.deepcopy(values)
    broken["singleuser"]["profilelist"] = broken["singleuser"].pop("profileList")
    with pytest.raises(AssertionError, match="keys the chart refuses"):
        test_values_use_only_keys_the_chart_accepts(broken)


def test_values_name_the_broker_service(values, broker, tmp_path):
    service = broker["Service"]
    url = urlsplit(values["singleuser"]["extraEnv"]["WORKBENCH_KBS_URL"])
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert _broker_config(broker, tmp_path).issuer == \
        values["singleuser"]["extraEnv"]["WORKBENCH_KBS_URL"]


def test_user_pods_may_reach_the_broker_and_the_broker_admits_them(values, broker):
    labels = broker["Deployment"]["spec"]["template"]["metadata"]["labels"]
    (egress,) = values["singleuser"]["networkPolicy"]["egress"]
    assert egress["to"][0]["podSelector"]["matchLabels"].items() <= labels.items()
    assert egress["ports"][0]["port"] == broker["Service"]["spec"]["ports"][0]["port"]
    admitted = [peer["podSelector"]["matchLabels"]
                for rule in broker["NetworkPolicy"]["spec"]["ingress"] for peer in rule["from"]]
    user_labels = values["singleuser"]["extraLabels"]
    assert any(selector.items() <= user_labels.items() for selector in admitted)


def test_the_hub_offers_only_the_confidential_kernel_and_no_test_login(values):
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] not in {"dummy", "null",
                                                              "shared-password"}
    assert config["JupyterHub"]["admin_access"] is False
    args = config["KubeSpawner"]["args"]
    assert "--MappingKernelManager.default_kernel_name=confidential-python" in args
    assert "--KernelSpecManager.allowed_kernelspecs=['confidential-python']" in args
    secret = values["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"]
    assert set(secret) == {"valueFrom"}


def _profiles(values) -> dict[str, dict[str, Any]]:
    return {p["slug"]: p for p in values["singleuser"]["profileList"]}


def test_profiles_override_only_kubespawner_settings(values):
    from kubespawner import KubeSpawner

    traits = set(KubeSpawner.class_trait_names(config=True))
    profiles = _profiles(values)
    assert set(profiles) == {"sgx", "cvm"}
    for profile in profiles.values():
        assert set(profile) <= PROFILE_KEYS, set(profile) - PROFILE_KEYS
        overrides = set(profile["kubespawner_override"])
        assert overrides <= traits, f"not KubeSpawner settings: {overrides - traits}"
    assert sum(bool(p.get("default")) for p in profiles.values()) == 1


def test_every_profile_runs_on_tee_hardware_never_simulated(values):
    assert "WORKBENCH_ALLOW_SIMULATION" not in values["singleuser"]["extraEnv"]
    for slug, profile in _profiles(values).items():
        environment = profile["kubespawner_override"]["environment"]
        assert environment["WORKBENCH_KERNEL_RUNTIME"] in HARDWARE_RUNTIMES, slug
        assert "WORKBENCH_ALLOW_SIMULATION" not in environment


def _as_list(items: Any) -> list[dict[str, Any]]:
    return list(items.values()) if isinstance(items, dict) else list(items or [])


def render_pod(values: dict[str, Any], slug: str) -> dict[str, Any]:
    """The Pod KubeSpawner would create for ``slug``: the chart's singleuser settings with the
    profile's overrides merged the way KubeSpawner merges them (dicts add, others replace)."""
    from kubernetes_asyncio.client import ApiClient
    from kubespawner.objects import make_pod

    user = values["singleuser"]
    override = _profiles(values)[slug]["kubespawner_override"]
    environment = {**user["extraEnv"], **override.get("environment", {})}
    volumes = {v["name"]: v for v in user["storage"]["extraVolumes"]}
    volumes.update(override.get("volumes", {}))
    mounts = {m["name"]: m for m in user["storage"]["extraVolumeMounts"]}
    mounts.update(override.get("volume_mounts", {}))
    pod = make_pod(
        name=f"jupyter-analyst-{slug}", cmd=["jupyterhub-singleuser"], port=8888,
        image=f"{user['image']['name']}:{user['image']['tag']}",
        env={k: str(v) for k, v in environment.items()},
        labels={"component": "singleuser-server", **user["extraLabels"]},
        node_selector=override.get("node_selector"), tolerations=override.get("tolerations"),
        volumes=_as_list(volumes), volume_mounts=_as_list(mounts),
        cpu_guarantee=user["cpu"]["guarantee"], cpu_limit=user["cpu"]["limit"],
        mem_guarantee=user["memory"]["guarantee"], mem_limit=user["memory"]["limit"],
        extra_resource_limits=override.get("extra_resource_limits"),
        extra_pod_config=override.get("extra_pod_config"),
        uid=1000, fs_gid=100)
    async def serialise() -> dict[str, Any]:
        async with ApiClient() as client:  # the Kubernetes wire form (camelCase, no Nones)
            return client.sanitize_for_serialization(pod)

    return asyncio.run(serialise())


@pytest.mark.parametrize("slug", ["sgx", "cvm"])
def test_each_profile_renders_a_valid_pod(values, slug):
    pod = render_pod(values, slug)
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


def test_the_sgx_profile_asks_the_device_plugin_for_an_enclave(values):
    pod = render_pod(values, "sgx")
    (container,) = pod["spec"]["containers"]
    limits = container["resources"]["limits"]
    assert limits["sgx.intel.com/epc"] and limits["sgx.intel.com/enclave"] == "1"
    assert pod["spec"]["nodeSelector"] == {"intel.feature.node.kubernetes.io/sgx": "true"}
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/run/aesmd",
                                                                   "/srv/workbench/data"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKBENCH_KERNEL_RUNTIME"] == "gramine-sgx"


def test_the_cvm_profile_uses_a_confidential_runtime_class(values):
    pod = render_pod(values, "cvm")
    assert pod["spec"]["runtimeClassName"] in {"kata-qemu-tdx", "kata-qemu-snp"}
    (container,) = pod["spec"]["containers"]
    assert "sgx.intel.com/epc" not in container["resources"].get("limits", {})
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKBENCH_KERNEL_RUNTIME"] == "cvm"
    assert env["WORKBENCH_KBS_URL"] == "http://workbench-kbs.workbench.svc:8080"


class _Recorder:
    """A stand-in for JupyterHub's User: records how a token is minted."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def new_api_token(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        return "minted"


def test_the_hub_mints_identify_only_tokens_like_the_package(values):
    from types import SimpleNamespace

    from traitlets.config import Config

    from workbench.brokerclient.identity import IDENTITY_ENV, hub_identity_token

    c = Config()
    c.KubeSpawner.environment = dict(values["singleuser"]["extraEnv"])  # as the chart sets it
    exec(values["hub"]["extraConfig"]["workbench-identity"], {"c": c})  # noqa: S102
    mint = c.KubeSpawner.environment[IDENTITY_ENV]
    ours, theirs = _Recorder(), _Recorder()
    assert mint(SimpleNamespace(user=ours)) == "minted"
    hub_identity_token(SimpleNamespace(user=theirs))
    assert ours.calls == theirs.calls and ours.calls[0]["scopes"] == []
    assert c.KubeSpawner.environment["WORKBENCH_KBS_URL"]  # the chart's entries stay


def test_the_broker_checks_identities_at_the_charts_hub(broker, tmp_path):
    config = _broker_config(broker, tmp_path)
    url = urlsplit(config.hub_api_url)
    namespace = broker["Deployment"]["metadata"]["namespace"]
    assert (url.hostname, url.port, url.path) == (f"hub.{namespace}.svc", 8081, "/hub/api")
    labels = broker["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"  # the hub admits it
    egress = broker["NetworkPolicy"]["spec"]["egress"]
    assert any(peer.get("podSelector", {}).get("matchLabels") == {"component": "hub"}
               and rule["ports"][0]["port"] == url.port
               for rule in egress for peer in rule["to"])


def test_the_broker_fetches_collateral_over_https_into_its_state_volume(broker, tmp_path):
    config = _broker_config(broker, tmp_path)
    assert config.collateral_pcs_urls and config.collateral_kds_urls
    assert all(u.startswith("https://") for u in
               (*config.collateral_pcs_urls, *config.collateral_kds_urls))
    mounts = {m["name"]: m["mountPath"] for m in _container(broker)["volumeMounts"]}
    assert config.collateral_cache_dir.startswith(mounts["state"] + "/")
    # The NetworkPolicy lets the broker reach them (HTTPS, and a PCCS's 8081).
    egress_ports = {p["port"] for rule in broker["NetworkPolicy"]["spec"]["egress"]
                    for p in rule.get("ports", [])}
    assert {443, 8081} <= egress_ports

"""deploy/kubernetes/cluster, offline: the DaskCluster's scheduler and worker pods and its
Service validate as Kubernetes objects (kubernetes-validate, strict), the workers run the
worker module with a command line it accepts, on the confidential runtime class, and the
network policies let the workers, and only the workers, reach the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from workbench.kernel.runtimes import RUNTIMES

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    (doc,) = _docs(KUBE / "cluster" / "daskcluster.yaml")
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == "DaskCluster"
    return doc


@pytest.fixture(scope="module")
def policies() -> dict[str, dict[str, Any]]:
    found = {d["metadata"]["name"]: d for d in _docs(KUBE / "cluster" / "networkpolicy.yaml")}
    found.update({d["metadata"]["name"]: d for d in _docs(KUBE / "broker" / "networkpolicy.yaml")})
    return found


def _pod(name: str, spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "workbench", "labels": labels},
            "spec": spec}


def _labels(component: str) -> dict[str, str]:
    # What the dask-kubernetes operator puts on the pods it makes.
    return {"dask.org/cluster-name": "workbench-cluster", "dask.org/component": component}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_cluster_renders_valid_pods_and_service(cluster, version):
    for component in ("scheduler", "worker"):
        pod = _pod(f"workbench-cluster-{component}", cluster["spec"][component]["spec"],
                   _labels(component))
        kubernetes_validate.validate(pod, version, strict=True)
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "workbench-cluster-scheduler", "namespace": "workbench"},
               "spec": cluster["spec"]["scheduler"]["service"]}
    kubernetes_validate.validate(service, version, strict=True)


def test_the_check_is_not_a_rubber_stamp(cluster):
    spec = yaml.safe_load(yaml.safe_dump(cluster["spec"]["worker"]["spec"]))
    spec["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(_pod("w", spec, _labels("worker")), VERSIONS[0],
                                     strict=True)


def test_workers_run_the_worker_on_a_confidential_runtime(cluster):
    from workbench.scaleout.worker import _arguments

    spec = cluster["spec"]["worker"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "workbench.scaleout.worker"]
    args = _arguments(container["args"])
    assert args.runtime in RUNTIMES and RUNTIMES[args.runtime].hardware
    assert args.broker == "http://workbench-kbs.workbench.svc:8080"
    assert spec["runtimeClassName"].startswith("kata-qemu-")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert all(env[n] == "1" for n in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                       "OPENBLAS_NUM_THREADS"))
    assert container["volumeMounts"][0]["readOnly"] is True
    # No simulation in a deployment, ever.
    assert not args.allow_simulation


def _admits(rule_from: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    return any(set(peer.get("podSelector", {}).get("matchLabels", {}).items())
               <= set(labels.items()) and "podSelector" in peer for peer in rule_from)


def test_only_workers_of_the_cluster_reach_the_broker(policies):
    broker = policies["workbench-kbs"]["spec"]["ingress"][0]["from"]
    assert _admits(broker, _labels("worker"))
    assert not _admits(broker, _labels("scheduler"))
    workers = policies["workbench-cluster-workers"]["spec"]
    assert set(workers["policyTypes"]) == {"Ingress", "Egress"}
    reached = [rule["to"][0] for rule in workers["egress"]]
    assert {"app.kubernetes.io/name": "workbench-kbs"} in [
        p.get("podSelector", {}).get("matchLabels") for p in reached]
    # Nothing but the broker, the cluster's own pods, the kernel and DNS: no ipBlock at all.
    assert not any("ipBlock" in peer for rule in workers["egress"] for peer in rule["to"])
    scheduler = policies["workbench-cluster-scheduler"]["spec"]
    assert not any(p.get("podSelector", {}).get("matchLabels", {}).get(
        "app.kubernetes.io/name") == "workbench-kbs"
        for rule in scheduler["egress"] for p in rule["to"])

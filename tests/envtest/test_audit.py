"""Audit against a real kube-apiserver (SPEC §13): pods of each verdict stored
with no webhook registered; audit's verdicts equal ``review`` of the very
objects the apiserver stored; PolicyReports written, rewritten without
duplicates, and cleared of pods that are gone; the audit CronJob's RBAC is
enough (the audit runs as its ServiceAccount, with a real token) and no more.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

pytest.importorskip("tests.envtest.kit", reason="the envtest kit (issue 8) is not here")

from tests.conftest import FIXTURES, ROOT, run_cli
from tests.test_manifests import kustomize
from webhook.rules.registry import CREATE_RULES

NAMESPACE = "audit-verdicts"
REPORTS = ("wgpolicyk8s.io", "v1alpha2", "policyreports")
# (fixture, stored name): one pod of each verdict, and two the webhook never judges.
PODS = {
    "kex-dags-in-image": "would-mutate",
    "kex-dags-in-volume": "would-deny",
    "kex-hostpath-volume": "would-deny",
    "edge-not-a-task-pod": None,
}


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def fixture_pod(case: str, namespace: str) -> dict[str, Any]:
    pod = yaml.safe_load((FIXTURES / case / "pod.yaml").read_text())
    pod["metadata"]["namespace"] = namespace
    pod["metadata"]["name"] = case
    pod["metadata"].pop("generateName", None)
    return pod


def admitted(case: str, namespace: str) -> dict[str, Any]:
    """The pod as the webhook would have admitted it: ``review``'s mutated pod."""
    done = run_cli("review", "-", stdin=json.dumps(fixture_pod(case, namespace)))
    assert done.returncode == 0, done.stderr
    pod = yaml.safe_load(done.stdout)
    pod["metadata"]["name"] = f"{case}-admitted"
    return pod


def audit(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", "--kubeconfig", str(kubeconfig), *args, timeout=120)


def test_reports_without_the_crd_say_how_to_install_it(cluster: Any):
    # First in this module: the CRDs are installed by the fixture below.
    done = audit(cluster.kubeconfig, "--write-reports", "-n", "default")
    assert done.returncode == 2
    assert done.stderr == (
        "error: audit: the cluster has no policyreports.wgpolicyk8s.io API: "
        "install the CRD (kubectl apply -k manifests/crds)\n"
    )


@pytest.fixture(scope="module")
def crds(cluster: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-k", str(ROOT / "manifests" / "crds"))
    kubectl(
        cluster.kubeconfig,
        "wait",
        "--for=condition=Established",
        "crd/policyreports.wgpolicyk8s.io",
        "--timeout=60s",
    )


@pytest.fixture(scope="module")
def stored_pods(cluster: Any, crds: None) -> Iterator[str]:
    config = cluster.kubeconfig
    kubectl(config, "create", "namespace", NAMESPACE)
    pods = [fixture_pod(case, NAMESPACE) for case in PODS]
    pods.append(admitted("kex-dags-in-image", NAMESPACE))
    kube_system = fixture_pod("kex-dags-in-volume", "kube-system")  # exempt
    pods.append(kube_system)
    kubectl(config, "apply", "-f", "-", stdin=yaml.safe_dump_all(pods))
    try:
        yield NAMESPACE
    finally:
        kubectl(config, "delete", "namespace", NAMESPACE, "--wait=false")
        kubectl(config, "-n", "kube-system", "delete", "pod", kube_system["metadata"]["name"])


def test_audit_verdicts_equal_review_of_the_stored_pods(cluster: Any, stored_pods: str):
    done = audit(cluster.kubeconfig, "-o", "json")
    assert done.returncode == 1, done.stderr  # would-deny pods, --fail-on deny
    results = {r["name"]: r for r in json.loads(done.stdout) if r["namespace"] == stored_pods}
    assert {name: r["verdict"] for name, r in results.items()} == {
        "kex-dags-in-image": "would-mutate",
        "kex-dags-in-volume": "would-deny",
        "kex-hostpath-volume": "would-deny",
        "kex-dags-in-image-admitted": "compliant",
    }
    assert all(r["namespace"] != "kube-system" for r in json.loads(done.stdout))
    stored = json.loads(kubectl(cluster.kubeconfig, "-n", stored_pods, "get", "pods", "-o", "json"))
    for pod in stored["items"]:
        name = pod["metadata"]["name"]
        reviewed = run_cli("review", "--output", "review", "-", stdin=json.dumps(pod))
        response = json.loads(reviewed.stdout)["response"]
        if name not in results:
            assert PODS.get(name, "") is None  # not a task pod: skipped by both
            continue
        result = results[name]
        assert result["uid"] == pod["metadata"]["uid"]
        if not response["allowed"]:
            assert result["verdict"] == "would-deny"
            for violation in result["violations"]:
                assert violation["field"] in response["status"]["message"]
        elif "patch" in response:
            assert result["verdict"] == "would-mutate"
            patch = run_cli("review", "--output", "patch", "-", stdin=json.dumps(pod))
            assert result["patch"] == json.loads(patch.stdout)
        else:
            assert result["verdict"] == "compliant"
    assert "4 task pods judged: 1 compliant, 1 would-mutate, 2 would-deny" in done.stderr


def test_table_output_and_fail_on(cluster: Any, stored_pods: str):
    table = audit(cluster.kubeconfig, "-n", stored_pods)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POD", "DAG", "TASK", "VERDICT", "RULES"]
    assert any(
        line.split()[1:2] == ["kex-dags-in-volume"] and "would-deny" in line for line in lines
    )
    assert lines[-1].startswith("4 task pods judged")
    assert audit(cluster.kubeconfig, "-n", stored_pods, "--fail-on", "never").returncode == 0
    compliant_only = audit(
        cluster.kubeconfig, "-n", stored_pods, "-l", "task-pod-webhook/enforced=true"
    )
    assert compliant_only.returncode == 0
    assert "1 task pods judged: 1 compliant" in compliant_only.stdout
    mutate = audit(cluster.kubeconfig, "-n", stored_pods, "-l", "!task-pod-webhook/enforced",
                   "--fail-on", "mutate", "-o", "junit")  # fmt: skip
    assert mutate.returncode == 1


def reports(admin: Any, namespace: str | None = None) -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(admin)
    if namespace is None:
        found = api.list_cluster_custom_object(*REPORTS)
    else:
        found = api.list_namespaced_custom_object(REPORTS[0], REPORTS[1], namespace, REPORTS[2])
    return list(found["items"])


def test_reports_written_rewritten_and_cleared(cluster: Any, admin: Any, stored_pods: str):
    assert audit(cluster.kubeconfig, "--write-reports", "--fail-on", "never").returncode == 0
    (report,) = reports(admin, stored_pods)
    assert report["metadata"]["name"] == "task-pod-webhook"
    pods = {r["resources"][0]["name"] for r in report["results"]}
    assert pods == {"kex-dags-in-image", "kex-dags-in-volume", "kex-hostpath-volume",
                    "kex-dags-in-image-admitted"}  # fmt: skip
    summary = report["summary"]
    assert (
        sum(summary.values()) == len(report["results"]) == 4 * len(CREATE_RULES)
    )  # a result per rule per pod
    assert summary["fail"] == 2
    assert {r["metadata"]["namespace"] for r in reports(admin)} == {stored_pods}

    again = audit(cluster.kubeconfig, "--write-reports", "--fail-on", "never")
    assert again.returncode == 0
    assert f"updated policyreport {stored_pods}/task-pod-webhook" in again.stderr
    (rewritten,) = reports(admin, stored_pods)
    assert rewritten["metadata"]["uid"] == report["metadata"]["uid"]  # updated in place
    assert len(rewritten["results"]) == len(report["results"])

    kubectl(cluster.kubeconfig, "-n", stored_pods, "delete", "pod", "kex-dags-in-volume",
            "kex-hostpath-volume")  # fmt: skip
    assert audit(cluster.kubeconfig, "-n", stored_pods, "--write-reports").returncode == 0
    (cleared,) = reports(admin, stored_pods)
    assert {r["resources"][0]["name"] for r in cleared["results"]} == {
        "kex-dags-in-image", "kex-dags-in-image-admitted",
    }  # fmt: skip
    assert cleared["summary"]["fail"] == 0

    kubectl(cluster.kubeconfig, "-n", stored_pods, "delete", "pods", "--all")
    assert audit(cluster.kubeconfig, "--write-reports").returncode == 0
    (emptied,) = reports(admin, stored_pods)
    assert emptied.get("results", []) == []
    assert set(emptied["summary"].values()) == {0}


@pytest.fixture(scope="module")
def audit_account(cluster: Any, admin: Any, crds: None, tmp_path_factory: Any) -> Path:
    """A kubeconfig with the token of the component's ServiceAccount, RBAC applied."""
    component = [
        o
        for o in kustomize(ROOT / "manifests" / "components" / "audit")
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "task-pod-webhook"}}
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=yaml.safe_dump_all([namespace, *component]))  # fmt: skip
    token = (
        kubernetes.client.CoreV1Api(admin)
        .create_namespaced_service_account_token(
            "task-pod-webhook-audit",
            "task-pod-webhook",
            {"spec": {"expirationSeconds": 3600}},
        )
        .status.token
    )
    return Path(cluster.token_kubeconfig(tmp_path_factory.mktemp("sa") / "kubeconfig", token))


def test_cron_job_rbac_is_enough(cluster: Any, admin: Any, audit_account: Path):
    kubectl(cluster.kubeconfig, "create", "namespace", "audit-rbac")
    pod = fixture_pod("kex-dags-in-volume", "audit-rbac")
    kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod))
    try:
        for _ in range(2):  # create, then update in place
            done = audit(audit_account, "--write-reports", "--fail-on", "never")
            assert done.returncode == 0, done.stderr
        (report,) = reports(admin, "audit-rbac")
        assert report["summary"]["fail"] == 1
    finally:
        kubectl(cluster.kubeconfig, "delete", "namespace", "audit-rbac", "--wait=false")


@pytest.mark.parametrize(
    ("verb", "group", "resource"),
    [
        ("get", "", "pods"),
        ("watch", "", "pods"),
        ("create", "", "pods"),
        ("delete", "", "pods"),
        ("list", "", "secrets"),
        ("get", "", "secrets"),
        ("update", "", "namespaces"),
        ("delete", "wgpolicyk8s.io", "policyreports"),
        ("patch", "wgpolicyk8s.io", "policyreports"),
        ("create", "wgpolicyk8s.io", "clusterpolicyreports"),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ],
)
def test_cron_job_rbac_is_no_more(audit_account: Path, verb: str, group: str, resource: str):
    client = kubernetes.config.new_client_from_config(config_file=str(audit_account))
    try:
        review = kubernetes.client.AuthorizationV1Api(client).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource}}}
        )
    finally:
        client.close()
    assert review.status.allowed is False, f"{verb} {resource}.{group} is allowed"


def test_node_name_of_the_scheduler_is_dropped_and_the_authors_kept(cluster: Any, admin: Any):
    """``as_created`` tells the two apart by managed fields: checked here on what a
    real apiserver stores after a binding (the scheduler's way) and after a CREATE
    that names the node."""
    from webhook.admission.verdicts import as_created

    core = kubernetes.client.CoreV1Api(admin)
    kubectl(cluster.kubeconfig, "create", "namespace", "audit-nodes")
    try:
        bound = fixture_pod("kex-dags-in-image", "audit-nodes")
        bound["metadata"]["name"] = "bound"
        pinned = fixture_pod("kex-dags-in-image", "audit-nodes")
        pinned["metadata"]["name"] = "pinned"
        pinned["spec"]["nodeName"] = "node-7"
        kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all([bound, pinned]))
        core.create_namespaced_pod_binding(
            "bound",
            "audit-nodes",
            {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "node-3"}},
            _preload_content=False,
        )
        stored = {
            p["metadata"]["name"]: p
            for p in json.loads(
                kubectl(
                    cluster.kubeconfig,
                    "-n",
                    "audit-nodes",
                    "get",
                    "pods",
                    "-o",
                    "json",
                    "--show-managed-fields",
                )  # as the API serves them to audit
            )["items"]
        }
        assert stored["bound"]["spec"]["nodeName"] == "node-3"
        assert "nodeName" not in as_created(stored["bound"])["spec"]
        assert as_created(stored["pinned"])["spec"]["nodeName"] == "node-7"
    finally:
        kubectl(cluster.kubeconfig, "delete", "namespace", "audit-nodes", "--wait=false")

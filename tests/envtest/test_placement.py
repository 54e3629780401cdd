"""Placement and isolation (SPEC §16) through a real apiserver (issue 14).

The webhook runs the placement fixtures' policy (a dedicated, tainted pool;
priority class ``airflow-tasks``; runtime class ``gvisor``; no service account
token) and is registered; the PriorityClasses and RuntimeClasses it names,
and the ones the DAG authors ask for, exist as cluster objects. The
apiserver's Priority and RuntimeClass admission plugins (on by default) run
before the webhooks and again after a webhook changed the pod: a pod that
asked for ``high-priority`` and ``kata`` is stored with the platform's
classes *and* with what those plugins derived from them (priority 1000,
``preemptionPolicy: Never``, gVisor's 64Mi overhead), which only their second
run after our mutation can have written; left with the values derived from
the pod's own classes they would have refused it. ``spec.nodeName`` and a
required node affinity that no node of the platform's pool can satisfy are
refused with the field named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster
from tests.envtest.stored import normalize_expected, normalize_stored

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

NAMESPACE = "airflow"
POLICY_FILE = FIXTURES / "placement-kpo-scheduling" / "policy.yaml"
PLACEMENT = wh.load_yaml(POLICY_FILE)["placement"]
PRIORITY_CLASSES = {
    "airflow-tasks": {"value": 1000, "preemptionPolicy": "Never"},  # the platform's
    "high-priority": {"value": 1000000},  # a DAG author's pick
}
RUNTIME_CLASSES = {
    "gvisor": {"handler": "runsc", "overhead": {"podFixed": {"memory": "64Mi"}}},  # the platform's
    "kata": {"handler": "kata", "overhead": {"podFixed": {"cpu": "250m"}}},  # a DAG author's pick
}


@pytest.fixture(scope="module")
def classes(admin: Any) -> Iterator[None]:
    """The cluster-scoped classes, created unless they exist, deleted afterwards."""
    scheduling = kubernetes.client.SchedulingV1Api(admin)
    node = kubernetes.client.NodeV1Api(admin)
    deletes = []
    try:
        for name, fields in PRIORITY_CLASSES.items():
            body = {"metadata": {"name": name}, **fields}
            deletes.append(lambda name=name: scheduling.delete_priority_class(name))
            wh.create_idempotently(lambda body=body: scheduling.create_priority_class(body))
        for name, fields in RUNTIME_CLASSES.items():
            body = {"metadata": {"name": name}, **fields}
            deletes.append(lambda name=name: node.delete_runtime_class(name))
            wh.create_idempotently(lambda body=body: node.create_runtime_class(body))
        yield
    finally:
        for delete in deletes:
            try:
                delete()
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="module")
def webhook(
    cluster: Cluster, admin: Any, classes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    wh.create_namespace(admin, NAMESPACE)
    workdir = tmp_path_factory.mktemp("placement")
    with wh.registered_webhook(cluster, workdir, POLICY_FILE.read_text()) as server:
        yield server


def _fixture(case: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    case_dir = FIXTURES / case
    case_yaml = wh.load_yaml(case_dir / "case.yaml")
    assert wh.load_yaml(case_dir / case_yaml["policy"]) == wh.load_yaml(POLICY_FILE)
    return wh.load_yaml(case_dir / "pod.yaml"), case_yaml, case_dir


@pytest.mark.parametrize(
    ("case", "runtime_class"),
    [
        ("placement-kpo-scheduling", None),
        ("placement-kex-priority-class", "kata"),  # a runtime class of the author's own too
    ],
)
def test_stored_pod_lands_on_the_platforms_pool_with_its_classes(
    admin: Any, webhook: Server, case: str, runtime_class: str | None
) -> None:
    pod, case_yaml, case_dir = _fixture(case)
    if runtime_class is not None:
        pod["spec"]["runtimeClassName"] = runtime_class
    mutated = wh.load_yaml(case_dir / "mutated.yaml")
    created, _, headers = wh.core(admin).create_namespaced_pod_with_http_info(NAMESPACE, pod)
    stored: dict[str, Any] = admin.sanitize_for_serialization(created)
    wh.core(admin).delete_namespaced_pod(
        stored["metadata"]["name"], NAMESPACE, grace_period_seconds=0
    )
    spec = stored["spec"]

    # The platform's placement, as the policy file says.
    assert spec["nodeSelector"].items() >= PLACEMENT["nodeSelector"].items()
    for toleration in PLACEMENT["tolerations"]:
        assert toleration in spec["tolerations"]
    assert spec["priorityClassName"] == PLACEMENT["priorityClassName"] == "airflow-tasks"
    assert spec["runtimeClassName"] == PLACEMENT["runtimeClassName"] == "gvisor"
    assert spec["automountServiceAccountToken"] is PLACEMENT["automountServiceAccountToken"]
    assert not any(v["name"].startswith("kube-api-access-") for v in spec.get("volumes") or [])

    # What the Priority and RuntimeClass plugins derived from the platform's classes.
    assert spec["priority"] == PRIORITY_CLASSES["airflow-tasks"]["value"]
    assert spec["preemptionPolicy"] == "Never"
    assert spec.pop("overhead") == RUNTIME_CLASSES["gvisor"]["overhead"]["podFixed"]

    # Everything else exactly as the fixture's mutated.yaml (modulo the apiserver's defaults).
    assert normalize_stored(stored, mutated) == normalize_expected(mutated)
    warnings = headers.get("Warning", "")
    for fragment in case_yaml["expect"].get("warningsContain", []):
        assert fragment in warnings, warnings
    if runtime_class is not None:
        assert f"runtimeClassName {runtime_class} overridden to gvisor" in warnings, warnings


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("placement-kex-node-name", "spec.nodeName"),
        (
            "placement-kpo-affinity-conflict",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0]",
        ),
    ],
)
def test_pod_the_pool_cannot_take_is_refused_naming_the_field(
    admin: Any, webhook: Server, case: str, field: str
) -> None:
    pod, case_yaml, _ = _fixture(case)
    error = wh.api_error(lambda: wh.core(admin).create_namespaced_pod(NAMESPACE, pod))
    assert error.status == 403
    message = json.loads(error.body)["message"]
    assert "denied the request: task-pod-webhook denied pod" in message
    assert f"- {field}: " in message, message
    for fragment in case_yaml["expect"]["messageContains"]:
        assert fragment in message
    assert wh.core(admin).list_namespaced_pod(NAMESPACE).items == []

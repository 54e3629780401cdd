"""The fixtures created through a real kube-apiserver that calls our webhook.

``serve`` (default policy) is registered with ``register --url`` and
``--ca-bundle-file``; each fixture's ``pod.yaml`` is created with the real
kubernetes client and must come back stored as its ``mutated.yaml`` says
(modulo what the apiserver defaults: ``tests/envtest/stored.py``), or be
refused with our message. Then PodSecurity: in a namespace labelled
``pod-security.kubernetes.io/enforce: restricted`` every mutated pod is
accepted by the apiserver's own PodSecurity admission, and the same pods are
rejected by it once the webhook is unregistered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster
from tests.envtest.stored import normalize_expected, normalize_stored

pytestmark = [pytest.mark.envtest, pytest.mark.slow]


def _cases() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for case_dir in sorted(FIXTURES.glob("*/pod.yaml")):
        case = wh.load_yaml(case_dir.parent / "case.yaml")
        if "policy" in case:
            continue  # the registered server runs the default policy
        found.append((case_dir.parent, case))
    return found


CASES = _cases()
# Fixtures the real apiserver refuses itself, with what its message says: it
# cannot decode an unparsable quantity, so such a pod never reaches a webhook
# (our handling of it is defence in depth for other callers); and one pod keeps
# the chart's unrendered ``RELEASE-NAME`` in its secretKeyRef names, which
# validation refuses after admission.
INVALID_PODS = {
    "edge-unparsable-cpu": "quantities must match the regular expression",
    "edge-unparsable-memory": "quantities must match the regular expression",
    "kex-template-fixed-by-service-account-override": "RELEASE-NAME-fernet-key",
}
ALLOWED = [d for d, c in CASES if c["expect"]["allowed"] and d.name not in INVALID_PODS]
DENIED = [d for d, c in CASES if not c["expect"]["allowed"] and d.name not in INVALID_PODS]
# What the webhook changes (the pods it leaves alone are not its to make restricted).
MUTATED = [
    d
    for d in ALLOWED
    if wh.load_yaml(d / "mutated.yaml") != wh.load_yaml(d / "pod.yaml")
    and wh.load_yaml(d / "case.yaml")["namespace"] == "airflow"
]
RESTRICTED = "restricted-tasks"
PSS_LABELS = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def webhook(
    cluster: Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    wh.create_namespace(admin, "airflow")
    wh.create_namespace(admin, RESTRICTED, PSS_LABELS)
    with wh.registered_webhook(cluster, tmp_path_factory.mktemp("fixtures-webhook")) as server:
        yield server


def _create(admin: Any, pod: dict[str, Any], namespace: str) -> tuple[dict[str, Any], str]:
    """The stored pod and the Warning headers of the create."""
    created, _, headers = wh.core(admin).create_namespaced_pod_with_http_info(namespace, pod)
    return admin.sanitize_for_serialization(created), headers.get("Warning", "")


def _delete(admin: Any, name: str, namespace: str) -> None:
    # At once: a pod with a nodeName (the mirror pod's) would otherwise wait for a kubelet.
    wh.core(admin).delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def _fixture(case_dir: Path, namespace: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    pod, case = wh.load_yaml(case_dir / "pod.yaml"), wh.load_yaml(case_dir / "case.yaml")
    if namespace is not None:
        pod["metadata"]["namespace"] = namespace
    return pod, case


@pytest.mark.parametrize("case_dir", ALLOWED, ids=lambda d: d.name)
def test_created_pod_is_stored_as_mutated_yaml(admin: Any, webhook: Server, case_dir: Path) -> None:
    pod, case = _fixture(case_dir)
    mutated = wh.load_yaml(case_dir / "mutated.yaml")
    stored, warnings = _create(admin, pod, case["namespace"])
    try:
        assert normalize_stored(stored, mutated) == normalize_expected(mutated)
        for fragment in case["expect"].get("warningsContain", []):
            assert fragment in warnings, warnings  # our warnings reach the client
    finally:
        _delete(admin, pod["metadata"]["name"], case["namespace"])


@pytest.mark.parametrize("case_dir", DENIED, ids=lambda d: d.name)
def test_denied_pod_fails_with_our_message(admin: Any, webhook: Server, case_dir: Path) -> None:
    pod, case = _fixture(case_dir)
    error = wh.api_error(lambda: wh.core(admin).create_namespaced_pod(case["namespace"], pod))
    status = json.loads(error.body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert 'admission webhook "selector-' in status["message"]
    assert "denied the request: " in status["message"]
    for fragment in case["expect"]["messageContains"]:
        assert fragment in status["message"]
    assert wh.core(admin).list_namespaced_pod(case["namespace"]).items == []


@pytest.mark.parametrize("case_dir", sorted(INVALID_PODS), ids=str)
def test_pod_the_apiserver_finds_invalid_is_refused_by_validation_not_by_us(
    admin: Any, webhook: Server, case_dir: str
) -> None:
    pod, case = _fixture(FIXTURES / case_dir)
    error = wh.api_error(lambda: wh.core(admin).create_namespaced_pod(case["namespace"], pod))
    status = json.loads(error.body)
    assert status["reason"] in ("Invalid", "BadRequest"), status
    assert INVALID_PODS[case_dir] in status["message"]
    assert "admission webhook" not in status["message"]
    assert wh.core(admin).list_namespaced_pod(case["namespace"]).items == []


@pytest.mark.parametrize("case_dir", MUTATED, ids=lambda d: d.name)
def test_mutated_pod_passes_podsecurity_restricted(
    admin: Any, webhook: Server, case_dir: Path
) -> None:
    pod, _ = _fixture(case_dir, RESTRICTED)
    stored, _ = _create(admin, pod, RESTRICTED)
    _delete(admin, stored["metadata"]["name"], RESTRICTED)
    assert stored["metadata"]["labels"]["task-pod-webhook/enforced"] == "true"


def test_without_the_webhook_podsecurity_rejects_the_same_pods(
    cluster: Cluster, admin: Any, webhook: Server
) -> None:
    assert len(MUTATED) >= 15
    assert wh.unregister(cluster.kubeconfig) == [
        "mutatingwebhookconfiguration/task-pod-webhook deleted",
        "validatingwebhookconfiguration/task-pod-webhook deleted",
    ]
    try:
        for case_dir in MUTATED:
            pod, _ = _fixture(case_dir, RESTRICTED)
            error = wh.api_error(
                lambda pod=pod: wh.core(admin).create_namespaced_pod(RESTRICTED, pod)
            )
            message = json.loads(error.body)["message"]
            assert 'violates PodSecurity "restricted:latest"' in message, (case_dir.name, message)
    finally:
        wh.register(webhook, cluster.kubeconfig)

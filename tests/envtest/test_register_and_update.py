"""``register`` / ``unregister`` and what a real apiserver sends besides CREATE.

The project's CLI registers both configurations by URL (twice: idempotent),
``--dry-run`` changes nothing, ``unregister`` removes both. With the webhook
registered: Airflow's relabel for adoption (a label-only UPDATE) passes, an
enforced label removed by an UPDATE comes back, ``kubectl create
--dry-run=server`` shows the mutated pod and stores nothing, and ``kubectl
debug`` gets a hardened ephemeral container.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

NAMESPACE = "airflow"
ENFORCED = "task-pod-webhook/enforced"
NAME = "task-pod-webhook"


@pytest.fixture(scope="module")
def server(
    cluster: Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Serving and ready, not registered: each test registers what it needs."""
    wh.create_namespace(admin, NAMESPACE)
    running = wh.start_webhook(tmp_path_factory.mktemp("register"), cluster.kubeconfig)
    try:
        wh.wait_ready(running)
        yield running
    finally:
        try:
            wh.unregister(cluster.kubeconfig)
        finally:
            running.stop()


@pytest.fixture
def registered(cluster: Cluster, server: Server) -> Iterator[Server]:
    wh.register(server, cluster.kubeconfig)
    try:
        yield server
    finally:
        wh.unregister(cluster.kubeconfig)


def _configurations(admin: Any) -> dict[str, Any]:
    """Ours, by kind (absent kinds missing), as the apiserver stores them."""
    api = kubernetes.client.AdmissionregistrationV1Api(admin)
    found = {}
    for kind, items in (
        ("mutating", api.list_mutating_webhook_configuration().items),
        ("validating", api.list_validating_webhook_configuration().items),
    ):
        for item in items:
            if item.metadata.name == NAME:
                found[kind] = admin.sanitize_for_serialization(item)
    return found


def test_register_creates_both_by_url_and_again_is_idempotent(
    cluster: Cluster, admin: Any, server: Server
) -> None:
    try:
        assert wh.register(server, cluster.kubeconfig) == [
            "mutatingwebhookconfiguration/task-pod-webhook created",
            "validatingwebhookconfiguration/task-pod-webhook created",
        ]
        first = _configurations(admin)
        ca_bundle = base64.b64encode(server.ca_file.read_bytes()).decode()
        for kind, path in (("mutating", "/mutate"), ("validating", "/validate")):
            for entry in first[kind]["webhooks"]:
                assert entry["clientConfig"] == {
                    "url": f"https://127.0.0.1:{server.port}{path}",
                    "caBundle": ca_bundle,
                }
                assert entry["failurePolicy"] == "Fail"
        assert wh.register(server, cluster.kubeconfig) == [
            "mutatingwebhookconfiguration/task-pod-webhook configured",
            "validatingwebhookconfiguration/task-pod-webhook configured",
        ]
        # An identical replace is a no-op for the apiserver: nothing new stored.
        assert _configurations(admin) == first
    finally:
        wh.unregister(cluster.kubeconfig)


def test_register_dry_run_changes_nothing(cluster: Cluster, admin: Any, server: Server) -> None:
    assert _configurations(admin) == {}
    printed = wh.cli_ok(*wh.register_args(server, cluster.kubeconfig), "--dry-run")
    kinds = [d["kind"] for d in yaml.safe_load_all(printed)]
    assert kinds == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    assert _configurations(admin) == {}


def test_unregister_removes_both(cluster: Cluster, admin: Any, server: Server) -> None:
    wh.register(server, cluster.kubeconfig)
    assert set(_configurations(admin)) == {"mutating", "validating"}
    assert wh.unregister(cluster.kubeconfig) == [
        "mutatingwebhookconfiguration/task-pod-webhook deleted",
        "validatingwebhookconfiguration/task-pod-webhook deleted",
    ]
    assert _configurations(admin) == {}
    assert wh.unregister(cluster.kubeconfig) == [
        "mutatingwebhookconfiguration/task-pod-webhook not found",
        "validatingwebhookconfiguration/task-pod-webhook not found",
    ]


# --------------------------------------------------------------------------- UPDATE and friends


@pytest.fixture
def task_pod(admin: Any, registered: Server) -> Iterator[dict[str, Any]]:
    """kpo-plain, created through the webhook; deleted afterwards."""
    pod = wh.load_yaml(FIXTURES / "kpo-plain" / "pod.yaml")
    created = wh.core(admin).create_namespaced_pod(NAMESPACE, pod)
    stored: dict[str, Any] = admin.sanitize_for_serialization(created)
    assert stored["metadata"]["labels"][ENFORCED] == "true"
    try:
        yield stored
    finally:
        wh.core(admin).delete_namespaced_pod(
            stored["metadata"]["name"], NAMESPACE, grace_period_seconds=0
        )


def _labels(admin: Any, name: str) -> dict[str, str]:
    labels: dict[str, str] = wh.core(admin).read_namespaced_pod(name, NAMESPACE).metadata.labels
    return labels


def test_airflow_relabel_for_adoption_passes(admin: Any, task_pod: dict[str, Any]) -> None:
    name = task_pod["metadata"]["name"]
    before = _labels(admin, name)
    # What KubernetesPodOperator does to its finished pod (a label-only patch).
    wh.core(admin).patch_namespaced_pod(
        name, NAMESPACE, {"metadata": {"labels": {"already_checked": "True"}}}
    )
    assert _labels(admin, name) == {**before, "already_checked": "True"}


def test_removed_enforced_label_comes_back(admin: Any, task_pod: dict[str, Any]) -> None:
    name = task_pod["metadata"]["name"]
    wh.core(admin).patch_namespaced_pod(
        name, NAMESPACE, [{"op": "remove", "path": "/metadata/labels/task-pod-webhook~1enforced"}]
    )
    assert _labels(admin, name)[ENFORCED] == "true"


def test_kubectl_dry_run_server_shows_the_mutation_and_stores_nothing(
    cluster: Cluster, admin: Any, registered: Server
) -> None:
    manifest = (FIXTURES / "kex-run-as-root" / "pod.yaml").read_text()
    done = wh.kubectl(
        cluster, "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=manifest
    )
    assert done.returncode == 0, done.stderr
    answered = json.loads(done.stdout)
    expected = wh.load_yaml(FIXTURES / "kex-run-as-root" / "mutated.yaml")
    assert answered["metadata"]["labels"][ENFORCED] == "true"
    assert answered["spec"]["securityContext"] == expected["spec"]["securityContext"]
    assert wh.core(admin).list_namespaced_pod(NAMESPACE).items == []


def test_kubectl_debug_gets_a_hardened_ephemeral_container(
    cluster: Cluster, admin: Any, task_pod: dict[str, Any]
) -> None:
    name = task_pod["metadata"]["name"]
    done = wh.kubectl(
        cluster, "debug", "-n", NAMESPACE, name, "--image=busybox:1.36",
        "--container=debugger", "--profile=general", "--target=base",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pod = wh.core(admin).read_namespaced_pod(name, NAMESPACE)
    [debugger] = admin.sanitize_for_serialization(pod)["spec"]["ephemeralContainers"]
    assert debugger["name"] == "debugger"
    context = debugger["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]

"""The webhook's own identity, and an apiserver outage under a serving webhook.

RBAC: ``kubectl kustomize manifests/base`` is rendered and only its Namespace,
ServiceAccount and RBAC objects are applied; ``serve`` then runs with a token
of ``system:serviceaccount:task-pod-webhook:task-pod-webhook`` (TokenRequest).
Before the RBAC is applied the caches cannot list and ``/readyz`` says 503;
after, it is ready (its list/watch/get work); and that identity may do nothing
more: above all it cannot update, patch or delete any webhook configuration,
so a compromised webhook pod cannot switch enforcement off.

Restart: a second, short-lived etcd + apiserver is stopped and started again
under a serving webhook: answers keep coming from the caches meanwhile,
``onLookupError`` decides what they cannot, and afterwards the caches have
reconnected (a namespace relabelled after the restart is seen).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import ROOT, Server
from tests.envtest import kit
from tests.envtest import webhook as wh
from tests.podkit import decoded_patch, pod, review

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

SA_NAMESPACE = "task-pod-webhook"
SA_NAME = "task-pod-webhook"
IDENTITY_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}
CONFIG_RESOURCES = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


def _base_objects() -> list[dict[str, Any]]:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "manifests" / "base")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [o for o in yaml.safe_load_all(rendered.stdout) if o]


def _apply(cluster: kit.Cluster, objects: list[dict[str, Any]]) -> None:
    done = wh.kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def identity(
    cluster: kit.Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Server]]:
    """The token kubeconfig of the base ServiceAccount, and a server using it (ready)."""
    objects = [o for o in _base_objects() if o["kind"] in IDENTITY_KINDS]
    accounts = [o for o in objects if o["kind"] in ("Namespace", "ServiceAccount")]
    rbac = [o for o in objects if o not in accounts]
    assert rbac, "manifests/base has no RBAC objects"
    _apply(cluster, accounts)
    token = (
        wh.core(admin)
        .create_namespaced_service_account_token(
            SA_NAME, SA_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    workdir = tmp_path_factory.mktemp("rbac")
    kubeconfig = cluster.token_kubeconfig(workdir / "webhook.kubeconfig", token)
    server = wh.start_webhook(workdir, kubeconfig)
    try:
        # Without its RBAC the identity cannot list: the caches never sync.
        wh.wait_until(lambda: wh.readyz(server), 30, "an answer on /readyz", server)
        for _ in range(10):
            status, body = wh.readyz(server) or (0, None)
            assert status == 503, body
            assert isinstance(body, dict) and body["checks"]["cachesSynced"] is False
        _apply(cluster, rbac)
        wh.wait_ready(server, timeout=20)
        yield kubeconfig, server
    finally:
        server.stop()


def test_readyz_waits_for_the_caches_and_base_rbac_lets_them_sync(
    identity: tuple[Path, Server],
) -> None:
    _, server = identity
    status, body = server.request("GET", "/readyz")
    assert status == 200, body
    assert "403" in server.log() or "forbidden" in server.log().lower()


def test_webhook_identity_can_read_what_the_caches_need(
    identity: tuple[Path, Server],
) -> None:
    kubeconfig, _ = identity
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        api = kubernetes.client.CoreV1Api(client)
        assert any(n.metadata.name == SA_NAMESPACE for n in api.list_namespace().items)
        assert api.list_service_account_for_all_namespaces().items
        assert api.read_namespaced_service_account(SA_NAME, SA_NAMESPACE).metadata.name == SA_NAME
        assert api.read_namespace(SA_NAMESPACE).metadata.name == SA_NAMESPACE
    finally:
        client.close()


def test_webhook_identity_cannot_change_webhook_configurations(
    cluster: kit.Cluster, admin: Any, identity: tuple[Path, Server]
) -> None:
    kubeconfig, server = identity
    # The configurations exist (registered by the operator, admin) ...
    wh.register(server, cluster.kubeconfig)
    try:
        # ... and the webhook's identity can neither re-register nor unregister them ...
        for args in (
            wh.register_args(server, kubeconfig),
            ["unregister", "--kubeconfig", str(kubeconfig)],
        ):
            done = wh.run_cli(*args)
            assert done.returncode != 0
            assert "Forbidden" in done.stderr or "forbidden" in done.stderr, done.stderr
        # ... nor switch them off with a patch, nor delete them.
        client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        api = kubernetes.client.AdmissionregistrationV1Api(client)
        off = {
            "webhooks": [
                {"name": "selector-0.mutate.task-pod-webhook.io", "failurePolicy": "Ignore"}
            ]
        }
        calls = [
            lambda: api.patch_mutating_webhook_configuration("task-pod-webhook", off),
            lambda: api.patch_validating_webhook_configuration(
                "task-pod-webhook", {"webhooks": []}
            ),
            lambda: api.delete_mutating_webhook_configuration("task-pod-webhook"),
            lambda: api.delete_validating_webhook_configuration("task-pod-webhook"),
            lambda: api.read_mutating_webhook_configuration("task-pod-webhook"),
        ]
        try:
            for call in calls:
                assert wh.api_error(call).status == 403
        finally:
            client.close()
        stored = kubernetes.client.AdmissionregistrationV1Api(
            admin
        ).read_mutating_webhook_configuration("task-pod-webhook")
        assert {w.failure_policy for w in stored.webhooks} == {"Fail"}
    finally:
        wh.unregister(cluster.kubeconfig)


def test_webhook_identity_may_do_nothing_more(identity: tuple[Path, Server]) -> None:
    kubeconfig, _ = identity
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        api = kubernetes.client.AuthorizationV1Api(client)
        review_ = api.create_self_subject_rules_review({"spec": {"namespace": "airflow"}})
    finally:
        client.close()
    granted = set()
    for rule in review_.status.resource_rules:
        groups = rule.api_groups or [""]
        if set(groups) <= {"authorization.k8s.io", "authentication.k8s.io"}:
            continue  # system:basic-user: every authenticated user may ask about itself
        for group in groups:
            for resource in rule.resources or []:
                for verb in rule.verbs:
                    granted.add((group, resource, verb))
    assert granted == {
        ("", resource, verb)
        for resource in ("namespaces", "serviceaccounts")
        for verb in ("get", "list", "watch")
    }


# --------------------------------------------------------------------------- restart


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kit.Cluster, Server]]:
    """A short-lived apiserver of its own and a webhook whose caches it feeds."""
    cluster = kit.Cluster.start(tmp_path_factory.mktemp("outage-cluster"), kit.assets())
    try:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            wh.create_namespace(client, "airflow", {"team": "data"})
            wh.core(client).create_namespaced_service_account(
                "airflow", {"metadata": {"name": "cached"}}
            )
        finally:
            client.close()
        policy = (
            "labels: {fromNamespace: [team]}\nserviceAccounts: {allowed: ['*'], lookup: true}\n"
        )
        server = wh.start_webhook(
            tmp_path_factory.mktemp("outage-webhook"), cluster.kubeconfig, policy
        )
        try:
            wh.wait_ready(server)
            yield cluster, server
        finally:
            server.stop()
    finally:
        cluster.stop()


def _answer(server: Server, account: str) -> dict[str, Any]:
    subject = pod(serviceAccountName=account)
    response: dict[str, Any] = server.review(review(subject))["response"]
    return response


def test_apiserver_restart_under_a_serving_webhook(outage: tuple[kit.Cluster, Server]) -> None:
    cluster, server = outage
    assert _answer(server, "cached")["allowed"] is True
    cluster.stop_apiserver()
    # Meanwhile: the caches answer what they hold ...
    cached = _answer(server, "cached")
    assert cached["allowed"] is True
    assert {"op": "add", "path": "/metadata/labels/team", "value": "data"} in decoded_patch(cached)
    # ... and onLookupError (deny) decides what they cannot.
    unknown = _answer(server, "created-meanwhile")
    assert unknown["allowed"] is False
    assert "the Kubernetes API could not be reached" in unknown["status"]["message"]
    assert "onLookupError is deny" in unknown["status"]["message"]
    cluster.start_apiserver()
    # The watches reconnect: a relabel after the restart reaches the namespace cache.
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        wh.core(client).patch_namespace("airflow", {"metadata": {"labels": {"team": "ml"}}})
    finally:
        client.close()
    relabelled = {"op": "add", "path": "/metadata/labels/team", "value": "ml"}
    wh.wait_until(
        lambda: relabelled in decoded_patch(_answer(server, "cached")),
        30,
        "the namespace relabelled after the restart",
        server,
    )
    status, body = server.request("GET", "/readyz")
    assert status == 200, body

"""The real server with Kubernetes API access, end to end.

No Kubernetes API server can run in CI here, so the API is
``tests/fake_apiserver.py`` (a stand-in that speaks only the list / watch / get
wire format), run on its own event loop in a thread; everything else is real:
the ``serve`` process, its kubernetes client and watch threads, TLS, HTTP.
Proves: /readyz waits for the caches; cross-account identities for each cloud,
allowed and denied; a missing service account; the namespace mode label and
``labels.fromNamespace``; ``onLookupError`` when the API is gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Server, start_server
from tests.fake_apiserver import FakeApiServer, write_kubeconfig
from tests.podkit import container, decoded_patch, pod, review

pytestmark = pytest.mark.slow

AWS_OK = "arn:aws:iam::111122223333:role/airflow-tasks"
AWS_OTHER = "arn:aws:iam::999988887777:role/admin"
POLICY = """
labels: {fromNamespace: [team]}
serviceAccounts:
  allowed: ["*"]
  lookup: true
  identities:
    awsAccounts: ["111122223333"]
    gcpProjects: ["data-prod"]
    azureClientIds: ["11111111-2222-3333-4444-555555555555"]
"""
ACCOUNTS = {
    "aws-ok": {"eks.amazonaws.com/role-arn": AWS_OK},
    "aws-other": {"eks.amazonaws.com/role-arn": AWS_OTHER},
    "gcp-ok": {"iam.gke.io/gcp-service-account": "tasks@data-prod.iam.gserviceaccount.com"},
    "gcp-other": {"iam.gke.io/gcp-service-account": "admin@billing.iam.gserviceaccount.com"},
    "azure-ok": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"},
    "azure-other": {"azure.workload.identity/client-id": "99999999-0000-0000-0000-000000000000"},
    "plain": {},
}


class ThreadedApi:
    """The stand-in API on its own loop, so the tests can block on HTTPS calls."""

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Open watch streams would hold a graceful shutdown for a minute.
        self.runner = web.AppRunner(fake.app, shutdown_timeout=0.5)
        self.stopped = False
        self._call(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._call(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def api() -> Iterator[ThreadedApi]:
    fake = FakeApiServer()
    for name, labels in [
        ("airflow", {"team": "data"}),
        ("rollout", {"task-pod-webhook/mode": "warn", "team": "ml"}),
    ]:
        fake.put(
            "namespaces",
            {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}},
        )
    for name, identity in ACCOUNTS.items():
        fake.put(
            "serviceaccounts",
            {"metadata": {"namespace": "airflow", "name": name, "annotations": identity}},
        )
    fake.fail_next("namespaces", 500, 500, 500)  # the first sync takes a few retries
    running = ThreadedApi(fake)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def kube_server(api: ThreadedApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("kube-server")
    kubeconfig = write_kubeconfig(workdir / "kubeconfig", api.url)
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    server = start_server(
        workdir, "--kubeconfig", str(kubeconfig), "--policy", str(policy),
        kube=True, wait_ready=False,
    )  # fmt: skip
    # Not ready until both caches have synced (the namespace list fails 3 times first).
    seen_not_synced = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, body = server.request("GET", "/readyz")
        except OSError:
            time.sleep(0.05)
            continue
        if status == 503:
            assert isinstance(body, dict)
            assert body["checks"]["cachesSynced"] is False
            seen_not_synced = True
        elif status == 200:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"never ready:\n{server.log()}")
    assert seen_not_synced, "the server was ready before its caches synced"
    yield server
    server.stop()


def _review(account: str, namespace: str = "airflow", **pod_spec: Any) -> dict[str, Any]:
    subject = pod(serviceAccountName=account, **pod_spec)
    subject["metadata"]["namespace"] = namespace
    return review(subject, namespace=namespace)


@pytest.mark.parametrize(
    ("account", "allowed", "fragment"),
    [
        ("aws-ok", True, None),
        ("aws-other", False, f'eks.amazonaws.com/role-arn "{AWS_OTHER}" is not in an allowed AWS account'),
        ("gcp-ok", True, None),
        ("gcp-other", False, "is not in an allowed GCP project"),
        ("azure-ok", True, None),
        ("azure-other", False, "is not an allowed client ID"),
        ("plain", True, None),
        ("ghost", False, 'service account "ghost" does not exist'),
    ],
)  # fmt: skip
def test_cross_account_service_accounts(
    kube_server: Server, account: str, allowed: bool, fragment: str | None
) -> None:
    response = kube_server.review(_review(account))["response"]
    assert response["allowed"] is allowed, response
    if fragment:
        assert fragment in response["status"]["message"]
        assert 'spec.serviceAccountName: service account "' in response["status"]["message"]


def test_labels_from_the_namespace(kube_server: Server) -> None:
    response = kube_server.review(_review("plain"))["response"]
    assert {"op": "add", "path": "/metadata/labels/team", "value": "data"} in decoded_patch(
        response
    )


def test_namespace_mode_label_turns_enforcement_into_warnings(kube_server: Server) -> None:
    body = _review("plain", namespace="rollout", hostNetwork=True)
    body["request"]["object"]["spec"]["containers"] = [
        container(securityContext={"privileged": True})
    ]
    response = kube_server.review(body)["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    assert any("would deny: spec.hostNetwork" in w for w in response["warnings"])
    assert any(
        "would apply: label team" in w or "would apply: container base" in w
        for w in response["warnings"]
    )


def test_api_gone_means_on_lookup_error_deny(api: ThreadedApi, kube_server: Server) -> None:
    # Cached accounts still answer; an uncached one needs the API, which is gone.
    api.stop()
    cached = kube_server.review(_review("aws-ok"))["response"]
    assert cached["allowed"] is True
    response = kube_server.review(_review("created-just-now"))["response"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "could not be checked: the Kubernetes API could not be reached" in message
    assert "onLookupError is deny" in message

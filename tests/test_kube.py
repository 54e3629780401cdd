"""webhook.kube's caches and lookups, driven through the real ``kubernetes``
client (loaded from a kubeconfig by ``load_api_client``) against
``tests/fake_apiserver.py``, a stand-in that speaks the API server's list and
watch wire format, for the faults a real server will not produce on demand
(bookmarks, 410 at will, slow or silent answers, dropped connections).
The same caches against a real kube-apiserver: tests/envtest/test_caches.py
and tests/envtest/test_rbac_and_restart.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from aiohttp.test_utils import TestServer

from tests.fake_apiserver import FakeApiServer, write_kubeconfig
from webhook.kube import facts as facts_module
from webhook.kube.client import KubeConfigError, in_cluster, load_api_client
from webhook.kube.facts import KubeFacts
from webhook.kube.informer import WatchSettings
from webhook.policy import Policy, default_policy, policy_from_document
from webhook.rules.base import Facts, ServiceAccountFact
from webhook.rules.service_accounts import effective_service_account

FAST = WatchSettings(
    backoff_initial=0.05,
    backoff_max=0.2,
    resync_interval=60.0,
    watch_timeout=60.0,
    connect_timeout=1.0,
    read_slack=5.0,
    list_timeout=5.0,
    page_size=2,
)
ROLE = "arn:aws:iam::111122223333:role/airflow"
ROLE_KEY = "eks.amazonaws.com/role-arn"
LOOKUP: Policy = policy_from_document({"serviceAccounts": {"lookup": True}})


class RecordingMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.restarts: Counter[str] = Counter()
        self.lookup_errors: Counter[str] = Counter()
        self.sizes: dict[str, int] = {}
        self.synced_by_kind: dict[str, bool] = {}

    def watch_restart(self, kind: str) -> None:
        with self._lock:
            self.restarts[kind] += 1

    def lookup_error(self, kind: str) -> None:
        with self._lock:
            self.lookup_errors[kind] += 1

    def cache_size(self, kind: str, size: int) -> None:
        with self._lock:
            self.sizes[kind] = size

    def synced(self, kind: str, synced: bool) -> None:
        with self._lock:
            self.synced_by_kind[kind] = synced


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def service_account(ns: str, name: str, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "annotations": annotations}}


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.fixture
def fake() -> FakeApiServer:
    server = FakeApiServer()
    for name, labels in [
        ("airflow", {"team": "data"}),
        ("kube-system", {}),
        ("tenant-a", {"task-pod-webhook/mode": "warn"}),
    ]:
        server.put("namespaces", namespace(name, **labels))
    server.put("serviceaccounts", service_account("airflow", "default"))
    server.put(
        "serviceaccounts",
        service_account(
            "airflow",
            "airflow-worker",
            **{
                "eks.amazonaws.com/role-arn": ROLE,
                "kubectl.kubernetes.io/last-applied-configuration": "{...}" * 1000,
                "description": "workers",
            },
        ),
    )
    return server


@pytest.fixture
async def api_url(fake: FakeApiServer) -> AsyncIterator[str]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
def api_client(api_url: str, tmp_path: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = load_api_client(write_kubeconfig(tmp_path / "kubeconfig", api_url))
    yield client
    client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
async def facts_source(
    api_client: kubernetes.client.ApiClient, metrics: RecordingMetrics
) -> AsyncIterator[KubeFacts]:
    source = KubeFacts(api_client, metrics=metrics, settings=FAST, lookup_budget=0.5)
    yield source
    await source.stop()


@pytest.fixture
async def synced(facts_source: KubeFacts) -> KubeFacts:
    await facts_source.start()
    assert await facts_source.wait_synced(5)
    return facts_source


async def test_initial_sync_lists_then_watches_with_bookmarks(
    fake: FakeApiServer, facts_source: KubeFacts, metrics: RecordingMetrics
) -> None:
    assert not facts_source.synced
    await facts_source.start()
    assert metrics.synced_by_kind == {"namespaces": False, "serviceaccounts": False}
    assert await facts_source.wait_synced(5)
    assert facts_source.synced
    assert metrics.synced_by_kind == {"namespaces": True, "serviceaccounts": True}
    assert facts_source.cache_sizes() == {"namespaces": 3, "serviceaccounts": 2}
    assert metrics.sizes == {"namespaces": 3, "serviceaccounts": 2}
    assert facts_source.namespace_labels("airflow") == {
        "kubernetes.io/metadata.name": "airflow",
        "team": "data",
    }
    # Only the identity annotations are kept, not last-applied-configuration.
    assert facts_source.service_accounts.get(("airflow", "airflow-worker")) == {
        "eks.amazonaws.com/role-arn": ROLE
    }
    # Three namespaces with page_size 2: a paged list (limit + continue).
    lists = fake.seen("namespaces", watch=False)
    assert [r.query.get("limit") for r in lists] == ["2", "2"]
    assert "continue" in lists[1].query
    await eventually(lambda: fake.watching("namespaces") == 1 and fake.watching("serviceaccounts"))
    (watch,) = fake.seen("namespaces", watch=True)
    assert watch.query["allowWatchBookmarks"] == "true"
    assert watch.query["resourceVersion"] == str(fake.revision)
    assert int(watch.query["timeoutSeconds"]) >= 1


async def test_dropped_watch_reconnects_from_the_last_resource_version(
    fake: FakeApiServer, synced: KubeFacts, metrics: RecordingMetrics
) -> None:
    await eventually(lambda: fake.watching("namespaces") == 1)
    fake.put("namespaces", namespace("before-drop"))
    await eventually(lambda: synced.namespace_labels("before-drop") is not None)
    last_seen = str(fake.revision)

    assert fake.drop_watches("namespaces") == 1
    await eventually(lambda: metrics.restarts["namespaces"] == 1)
    fake.put("namespaces", namespace("after-drop"))  # maybe before the reconnect: replayed
    await eventually(lambda: synced.namespace_labels("after-drop") is not None)

    watches = fake.seen("namespaces", watch=True)
    assert len(watches) == 2
    assert watches[1].query["resourceVersion"] == last_seen
    assert len(fake.seen("namespaces", watch=False)) == 2  # the first (paged) list only
    assert synced.synced


async def test_410_gone_event_relists(
    fake: FakeApiServer, synced: KubeFacts, metrics: RecordingMetrics
) -> None:
    await eventually(lambda: fake.watching("namespaces") == 1)
    lists_before = len(fake.seen("namespaces", watch=False))
    # A change the client never hears of: only a relist can find it.
    fake.put("namespaces", namespace("airflow", team="moved"), notify=False)
    fake.delete("namespaces", "kube-system", notify=False)
    fake.compact("namespaces")
    fake.send_gone("namespaces")

    await eventually(lambda: (synced.namespace_labels("airflow") or {}).get("team") == "moved")
    assert synced.namespace_labels("kube-system") is None
    assert len(fake.seen("namespaces", watch=False)) > lists_before
    assert metrics.restarts["namespaces"] == 1
    await eventually(lambda: fake.watching("namespaces") == 1)
    assert fake.seen("namespaces", watch=True)[-1].query["resourceVersion"] == str(fake.revision)


async def test_watch_from_a_compacted_resource_version_relists(
    fake: FakeApiServer, synced: KubeFacts, metrics: RecordingMetrics
) -> None:
    await eventually(lambda: fake.watching("serviceaccounts") == 1)
    fake.put("serviceaccounts", service_account("airflow", "hidden"), notify=False)
    fake.compact("serviceaccounts")
    fake.drop_watches("serviceaccounts")  # the reconnect is answered with ERROR 410

    await eventually(lambda: synced.service_accounts.get(("airflow", "hidden")) is not None)
    assert metrics.restarts["serviceaccounts"] == 2  # the drop, then the 410


async def test_http_410_on_the_watch_request_relists(
    fake: FakeApiServer, synced: KubeFacts, metrics: RecordingMetrics
) -> None:
    await eventually(lambda: fake.watching("namespaces") == 1)
    lists_before = len(fake.seen("namespaces", watch=False))
    fake.put("namespaces", namespace("quiet"), notify=False)
    fake.fail_next("namespaces", 410)
    fake.drop_watches("namespaces")

    await eventually(lambda: synced.namespace_labels("quiet") is not None)
    assert len(fake.seen("namespaces", watch=False)) > lists_before


async def test_bookmarks_advance_the_resource_version(
    fake: FakeApiServer, synced: KubeFacts, metrics: RecordingMetrics
) -> None:
    await eventually(lambda: fake.watching("namespaces") == 1)
    for index in range(5):  # the shared revision moves on; no namespace event
        fake.put("serviceaccounts", service_account("airflow", f"sa-{index}"))
    bookmark = fake.bookmark("namespaces")
    await eventually(lambda: synced.namespaces.resource_version == bookmark)

    # Without the bookmark, the reconnect would come from before the
    # compaction and get 410; with it, the watch resumes without a relist.
    fake.compact("namespaces")
    lists_before = len(fake.seen("namespaces", watch=False))
    fake.drop_watches("namespaces")
    await eventually(lambda: len(fake.seen("namespaces", watch=True)) == 2)
    assert fake.seen("namespaces", watch=True)[1].query["resourceVersion"] == bookmark
    await eventually(lambda: fake.watching("namespaces") == 1)
    assert len(fake.seen("namespaces", watch=False)) == lists_before
    assert metrics.restarts["namespaces"] == 1


async def test_periodic_resync_relists(fake: FakeApiServer, api_client: Any) -> None:
    settings = WatchSettings(
        backoff_initial=0.05, backoff_max=0.2, resync_interval=1.0, connect_timeout=1.0
    )
    source = KubeFacts(api_client, settings=settings)
    await source.start()
    try:
        assert await source.wait_synced(5)
        fake.put("namespaces", namespace("airflow", team="resynced"), notify=False)
        await eventually(
            lambda: (source.namespace_labels("airflow") or {}).get("team") == "resynced", 4
        )
        # The watch asked to be closed by the resync deadline, not 5 minutes later.
        assert int(fake.seen("namespaces", watch=True)[0].query["timeoutSeconds"]) == 1
    finally:
        await source.stop()


async def test_failing_list_is_retried_with_backoff(
    fake: FakeApiServer, facts_source: KubeFacts, metrics: RecordingMetrics
) -> None:
    fake.fail_next("serviceaccounts", 500, 503, 500)
    await facts_source.start()
    assert await facts_source.wait_synced(5)
    assert metrics.restarts["serviceaccounts"] == 3
    assert facts_source.synced


async def test_stop_interrupts_a_blocked_watch(fake: FakeApiServer, synced: KubeFacts) -> None:
    await eventually(lambda: fake.watching("namespaces") == fake.watching("serviceaccounts") == 1)
    started = time.monotonic()
    await synced.stop()
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("kube-watch-")]


async def test_cache_miss_reads_the_service_account_once(
    fake: FakeApiServer, synced: KubeFacts
) -> None:
    # Created a moment ago: the watch has not told us yet.
    fake.put(
        "serviceaccounts",
        service_account("airflow", "fresh", **{"iam.gke.io/gcp-service-account": "a@p.iam"}),
        notify=False,
    )
    fact = await synced.service_account("airflow", "fresh")
    assert fact == ServiceAccountFact(
        status="found", annotations={"iam.gke.io/gcp-service-account": "a@p.iam"}
    )
    reads = [r for r in fake.requests if r.path.endswith("/serviceaccounts/fresh")]
    assert len(reads) == 1
    # Remembered: the second lookup is a cache hit.
    assert (await synced.service_account("airflow", "fresh")).status == "found"
    assert len([r for r in fake.requests if r.path.endswith("/serviceaccounts/fresh")]) == 1


async def test_namespace_missing_from_the_cache_is_read_once(
    fake: FakeApiServer, synced: KubeFacts
) -> None:
    # A namespace created a moment ago (the watch has not told us yet): its labels
    # select the policy profile, so the facts read it, once for a storm of reviews.
    fake.put("namespaces", namespace("fresh", tier="large"), notify=False)
    storm = await asyncio.gather(
        *(synced.facts_for("fresh", pod(), default_policy()) for _ in range(20))
    )
    labels = {"kubernetes.io/metadata.name": "fresh", "tier": "large"}
    assert {tuple(sorted((f.namespace_labels or {}).items())) for f in storm} == {
        tuple(sorted(labels.items()))
    }
    reads = [r for r in fake.requests if r.path == "/api/v1/namespaces/fresh"]
    assert len(reads) == 1
    # Remembered in the cache: the next review reads nothing.
    assert synced.namespace_labels("fresh") == labels
    # A namespace the API does not know stays unknown (and is not asked again at once).
    assert (await synced.facts_for("ghost", pod(), default_policy())).namespace_labels is None
    assert (await synced.facts_for("ghost", pod(), default_policy())).namespace_labels is None
    assert len([r for r in fake.requests if r.path == "/api/v1/namespaces/ghost"]) == 1


async def test_slow_api_is_a_lookup_error_within_the_budget(
    fake: FakeApiServer, api_client: Any, metrics: RecordingMetrics
) -> None:
    fake.read_delay = 3.0
    source = KubeFacts(api_client, metrics=metrics, lookup_budget=0.2)
    try:
        started = time.monotonic()
        fact = await source.service_account("airflow", "default")
        assert time.monotonic() - started < 0.5
    finally:
        await source.stop()
    assert fact.status == "error"
    assert fact.error == "reading service account airflow/default: no answer within 0.2s"
    assert metrics.lookup_errors["serviceaccounts"] == 1


async def test_unreachable_api_is_a_lookup_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = load_api_client(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"))
    metrics = RecordingMetrics()
    source = KubeFacts(client, metrics=metrics, lookup_budget=0.5)
    try:
        started = time.monotonic()
        facts = await source.facts_for("airflow", pod(), LOOKUP)
        assert time.monotonic() - started < 0.8
    finally:
        await source.stop()
    assert facts.service_account is not None
    assert facts.service_account.status == "error"
    assert (
        facts.service_account.error == "reading service account airflow/default: connection failed"
    )
    assert metrics.lookup_errors["serviceaccounts"] == 1
    assert not source.synced


async def test_facts_for(fake: FakeApiServer, synced: KubeFacts) -> None:
    found = await synced.facts_for("airflow", pod(serviceAccountName="airflow-worker"), LOOKUP)
    assert found == Facts(
        namespace="airflow",
        namespace_labels={"kubernetes.io/metadata.name": "airflow", "team": "data"},
        service_account=ServiceAccountFact(
            status="found", annotations={"eks.amazonaws.com/role-arn": ROLE}
        ),
    )
    # Lookups off: no service account fact, and no request.
    requests_before = len(fake.requests)
    off = await synced.facts_for("tenant-a", pod(serviceAccountName="x"), default_policy())
    assert off == Facts(
        namespace="tenant-a",
        namespace_labels={
            "kubernetes.io/metadata.name": "tenant-a",
            "task-pod-webhook/mode": "warn",
        },
        service_account=None,
    )
    assert len(fake.requests) == requests_before
    # An unknown namespace has no labels; the deprecated field names the account.
    unknown = await synced.facts_for("elsewhere", pod(serviceAccount="legacy"), LOOKUP)
    assert unknown.namespace_labels is None
    assert unknown.service_account == ServiceAccountFact(status="missing")
    paths = [r.path for r in fake.requests]
    assert "/api/v1/namespaces/elsewhere/serviceaccounts/legacy" in paths
    assert "/api/v1/namespaces/elsewhere" in paths  # not in the cache: read, not there
    # No name at all: "default".
    default = await synced.facts_for("airflow", pod(), LOOKUP)
    assert default.service_account == ServiceAccountFact(status="found")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"serviceAccountName": "a", "serviceAccount": "b"}, "a"),
        ({"serviceAccountName": "", "serviceAccount": "b"}, "b"),
        ({"serviceAccount": "b"}, "b"),
        ({}, "default"),
        ({"serviceAccountName": 7}, "default"),
    ],
)
def test_effective_service_account(spec: dict[str, Any], expected: str) -> None:
    assert effective_service_account({"spec": spec})[1] == expected
    assert effective_service_account({"spec": None})[1] == "default"
    assert effective_service_account("not a pod")[1] == "default"


def test_backoff_is_capped_and_jittered() -> None:
    settings = WatchSettings(backoff_initial=1.0, backoff_max=8.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = {settings.backoff(failures) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


def test_load_api_client_prefers_in_cluster_config_inside_a_pod(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def in_cluster(client_configuration: kubernetes.client.Configuration) -> None:
        calls.append("in-cluster")
        client_configuration.host = "https://10.0.0.1:443"

    monkeypatch.setattr(kubernetes.config, "load_incluster_config", in_cluster)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert load_api_client(None).configuration.host == "https://10.0.0.1:443"
    assert calls == ["in-cluster"]
    # An explicit --kubeconfig wins even inside a pod.
    path = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")
    assert load_api_client(path).configuration.host == "http://127.0.0.1:1"
    assert calls == ["in-cluster"]


def test_load_api_client_without_configuration_is_a_kube_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeConfigError, match="No configuration found"):
        load_api_client(tmp_path / "absent")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent-too"))
    with pytest.raises(KubeConfigError, match="default kubeconfig"):
        load_api_client(None)
    assert not in_cluster()


async def test_from_config_owns_its_client(
    fake: FakeApiServer, api_url: str, tmp_path: Path
) -> None:
    source = KubeFacts.from_config(write_kubeconfig(tmp_path / "kc", api_url), settings=FAST)
    await source.start()
    assert await source.wait_synced(5)
    await source.stop()
    assert source.namespace_labels("airflow") is not None  # the caches outlive stop()


# --- lookups in the request path: coalesced, remembered, bounded ------------------


def reads_of(fake: FakeApiServer, name: str) -> int:
    return sum(r.path.endswith(f"/serviceaccounts/{name}") for r in fake.requests)


async def test_a_storm_of_lookups_of_one_account_costs_one_api_call(
    fake: FakeApiServer, api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facts_module, "MISSING_TTL", 0.3)
    fake.read_delay = 0.2  # the lookups overlap
    fake.put(
        "serviceaccounts", service_account("airflow", "fresh", **{ROLE_KEY: ROLE}), notify=False
    )
    source = KubeFacts(api_client, lookup_budget=2.0)
    try:
        found = await asyncio.gather(
            *(source.service_account("airflow", "fresh") for _ in range(30))
        )
        missing = await asyncio.gather(
            *(source.service_account("airflow", "nobody") for _ in range(30))
        )
        assert (reads_of(fake, "fresh"), reads_of(fake, "nobody")) == (1, 1)
        # the 404 is remembered for a moment, then asked again
        assert (await source.service_account("airflow", "nobody")).status == "missing"
        assert reads_of(fake, "nobody") == 1
        await asyncio.sleep(0.35)
        assert (await source.service_account("airflow", "nobody")).status == "missing"
        assert reads_of(fake, "nobody") == 2
    finally:
        await source.stop()
    assert found == [ServiceAccountFact(status="found", annotations={ROLE_KEY: ROLE})] * 30
    assert missing == [ServiceAccountFact(status="missing")] * 30


class SilentServer:
    """A TCP server that accepts every connection and never answers (nor closes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            connection.setblocking(False)
            self.accepted.append(connection)

    def open_connections(self) -> int:
        """Connections the client has not closed yet (what it sent is read and dropped)."""
        return sum(not self._closed(connection) for connection in list(self.accepted))

    @staticmethod
    def _closed(connection: socket.socket) -> bool:
        while True:
            try:
                if connection.recv(65536) == b"":
                    return True
            except BlockingIOError:
                return False
            except OSError:
                return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self.accepted:
            connection.close()
        self.sock.close()


async def test_a_silent_api_fails_lookups_within_the_budget_and_nothing_piles_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentServer()
    client = load_api_client(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{silent.port}"))
    metrics = RecordingMetrics()
    budget = 0.3
    source = KubeFacts(client, metrics=metrics, lookup_budget=budget, lookup_workers=4)

    async def timed(name: str) -> tuple[float, ServiceAccountFact]:
        started = time.monotonic()
        fact = await source.service_account("airflow", name)
        return time.monotonic() - started, fact

    try:
        with caplog.at_level("INFO", logger="webhook.kube.facts"):
            # 40 accounts at once on 4 lookup threads
            first = await asyncio.gather(*(timed(f"sa-{i}") for i in range(40)))
            # the threads are freed: urllib3 makes no retry of its own, so each
            # connection is given up (closed) once its one attempt times out
            await asyncio.to_thread(
                wait_until, lambda: silent.open_connections() == 0, 10.0, "connections closed"
            )
            second = await asyncio.gather(*(timed(f"again-{i}") for i in range(8)))
        accepted = len(silent.accepted)
    finally:
        await source.stop()
        client.close()  # type: ignore[no-untyped-call]
        silent.close()
    slowest = max(elapsed for elapsed, _ in first + second)
    print(f"\nsilent API: 48 lookups, slowest {slowest * 1000:.0f} ms, {accepted} connections")
    assert all(fact.status == "error" for _, fact in first + second)
    assert (
        first[0][1].error == f"reading service account airflow/sa-0: no answer within {budget:g}s"
    )
    assert slowest < budget + 0.5
    # one connection per lookup thread and round: the queued lookups were dropped
    # when their budget (all but a tenth of it) ran out, before they connected
    assert accepted <= 8
    assert metrics.lookup_errors["serviceaccounts"] == 48
    changes = [r.getMessage() for r in caplog.records if "Kubernetes API lookups" in r.getMessage()]
    assert len(changes) == 1 and "failing" in changes[0]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


async def test_lookups_log_once_when_they_fail_and_once_when_they_recover(
    fake: FakeApiServer,
    api_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(facts_module, "ERROR_TTL", 0.0)
    source = KubeFacts(api_client, lookup_budget=0.2)
    try:
        with caplog.at_level("INFO", logger="webhook.kube.facts"):
            fake.read_delay = 1.0
            failed = [await source.service_account("airflow", f"x-{i}") for i in range(5)]
            fake.read_delay = 0.0
            recovered = [await source.service_account("airflow", f"y-{i}") for i in range(5)]
    finally:
        await source.stop()
    assert {f.status for f in failed} == {"error"}
    assert {f.status for f in recovered} == {"missing"}
    changes = [r.getMessage() for r in caplog.records if "Kubernetes API lookups" in r.getMessage()]
    assert len(changes) == 2, changes
    assert "failing (no answer within 0.2s" in changes[0]
    assert "succeed again" in changes[1]

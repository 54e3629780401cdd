"""Kubernetes API access: watch-fed caches for admission facts, and registration.

The only module that imports ``kubernetes`` (SPEC §6). Two halves:

**Facts.** ``KubeFacts`` keeps two in-memory caches, Namespaces (name →
labels) and ServiceAccounts ((namespace, name) → identity annotations), each
fed by one ``WatchCache``: a daemon thread that lists (paged), watches from
the list's resourceVersion with bookmarks, applies ADDED / MODIFIED / DELETED,
remembers the last resourceVersion it saw (bookmarks included), reconnects
after a dropped stream with capped, jittered exponential backoff, relists on
410 Gone (an ERROR event or an HTTP 410), and relists every
``resync_interval`` anyway. The client is synchronous, so it only ever runs
in these threads (and in a small pool for the direct lookups), never on the
event loop. A thread publishes by plain dict assignment (a relist swaps in a
whole new dict), which the GIL makes atomic, so request handlers read the
caches without locks and without awaiting. Only what the rules read is
stored: namespace labels, and service account annotations of the identity
providers' domains (``IDENTITY_ANNOTATION_PREFIXES``); a cluster with 50,000
service accounts costs a few MB.

A service account missing from the cache (created a moment ago, or the
cache not synced yet) is read with ONE direct GET within a small budget: a
404 is ``missing``; a timeout or any other failure is ``error`` (the policy's
``onLookupError`` decides), never an exception into the request path.

**Registration.** ``register`` / ``unregister`` apply the Mutating- and
ValidatingWebhookConfiguration that ``webhook.registration`` builds.

Errors: the caches log and retry forever (counted through ``KubeMetrics``);
lookups turn every failure into a ``ServiceAccountFact``; ``register`` and
``unregister`` let ``kubernetes.client.exceptions.ApiException`` (and
connection errors) propagate for the CLI to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Generic, Protocol, TypeVar

import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from webhook.config import Policy
from webhook.rules.base import Facts, ServiceAccountFact
from webhook.rules.service_accounts import effective_service_account

log = logging.getLogger(__name__)

NAMESPACES: Final = "namespaces"
SERVICE_ACCOUNTS: Final = "serviceaccounts"

# The annotations the identity providers' admission webhooks read (EKS IRSA,
# GKE Workload Identity, Azure Workload Identity): §4.5 judges these.
IDENTITY_ANNOTATION_PREFIXES: Final = (
    "eks.amazonaws.com/",
    "iam.gke.io/",
    "azure.workload.identity/",
)

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_HTTP_GONE: Final = 410
_HTTP_NOT_FOUND: Final = 404

Labels = Mapping[str, str]


# --- client ----------------------------------------------------------------


class KubeConfigError(Exception):
    """No usable API configuration: no kubeconfig found, or an unusable one."""


def in_cluster() -> bool:
    """Running in a pod (the kubelet sets KUBERNETES_SERVICE_HOST)?"""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def load_api_client(kubeconfig: Path | None) -> kubernetes.client.ApiClient:
    """An API client: ``kubeconfig`` when given, else in-cluster config when
    running in a pod, else the default kubeconfig ($KUBECONFIG, ~/.kube/config).

    The in-cluster loader re-reads the projected token file when it expires.
    Raises KubeConfigError when no configuration can be loaded.
    """
    configuration = kubernetes.client.Configuration()
    # Untyped in some client versions, typed in others: call through Any.
    loaders: Any = kubernetes.config
    try:
        if kubeconfig is None and in_cluster():
            loaders.load_incluster_config(client_configuration=configuration)
        else:
            loaders.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                client_configuration=configuration,
            )
    except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
        where = (
            str(kubeconfig)
            if kubeconfig is not None
            else ("in-cluster" if in_cluster() else "default kubeconfig")
        )
        raise KubeConfigError(f"{where}: {exc}") from exc
    return kubernetes.client.ApiClient(configuration)


# --- metrics seam ----------------------------------------------------------


class KubeMetrics(Protocol):
    """What the caches report. Called from the cache and lookup threads, so an
    implementation must be thread-safe (prometheus_client's collectors are).
    ``kind`` is ``"namespaces"`` or ``"serviceaccounts"``."""

    def watch_restart(self, kind: str) -> None: ...

    def lookup_error(self, kind: str) -> None: ...

    def cache_size(self, kind: str, size: int) -> None: ...

    def synced(self, kind: str, synced: bool) -> None: ...


class NullKubeMetrics:
    def watch_restart(self, kind: str) -> None:
        pass

    def lookup_error(self, kind: str) -> None:
        pass

    def cache_size(self, kind: str, size: int) -> None:
        pass

    def synced(self, kind: str, synced: bool) -> None:
        pass


# --- watch-fed caches --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Timing of the list/watch loops (seconds). Tests shrink them."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    resync_interval: float = 600.0
    # Server-side timeoutSeconds of one watch, jittered up to 2x (as client-go
    # does) so that replicas do not reconnect in lockstep.
    watch_timeout: float = 300.0
    connect_timeout: float = 5.0
    # Read timeout of a watch = its timeoutSeconds + this: a connection that
    # died silently (no FIN, no RST) is noticed instead of hanging forever.
    read_slack: float = 30.0
    list_timeout: float = 60.0
    page_size: int = 500

    def backoff(self, failures: int) -> float:
        """Capped exponential backoff with equal jitter, for the n-th failure in a row."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** max(failures - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class WatchError(Exception):
    """An ERROR event other than 410, or an unusable list response."""


class _Gone(Exception):
    """The resourceVersion we watch from is too old: relist."""


K = TypeVar("K", bound=Hashable)
ListCall = Callable[..., Any]


class WatchCache(Generic[K]):
    """One kind's objects, kept current by a list+watch thread.

    ``key_of`` and ``value_of`` reduce an object (the raw JSON dict) to what
    is stored; ``key_of`` returns None for an object that can't be keyed.
    """

    def __init__(
        self,
        kind: str,
        list_call: ListCall,
        *,
        key_of: Callable[[Mapping[str, Any]], K | None],
        value_of: Callable[[Mapping[str, Any]], Labels],
        settings: WatchSettings,
        metrics: KubeMetrics,
    ) -> None:
        self.kind = kind
        self._list_call = list_call
        self._key_of = key_of
        self._value_of = value_of
        self._settings = settings
        self._metrics = metrics
        self._items: dict[K, Labels] = {}
        self.resource_version: str | None = None
        self.listed = threading.Event()
        self._stopping = threading.Event()
        self._response_lock = threading.Lock()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    # Readers (any thread, the event loop included): no locks, no I/O.

    def get(self, key: K) -> Labels | None:
        return self._items.get(key)

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, key: K, value: Labels) -> None:
        """Add what a direct GET found; the watch stays the authority."""
        self._items.setdefault(key, value)
        self._metrics.cache_size(self.kind, len(self._items))

    # Lifecycle.

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"kube-watch-{self.kind}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end, and break off any read it is blocked in."""
        self._stopping.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            _interrupt(response)

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # The thread.

    def _run(self) -> None:
        settings = self._settings
        failures = 0
        resync_at = 0.0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if self.resource_version is None or started >= resync_at:
                    self._relist()
                    resync_at = time.monotonic() + settings.resync_interval
                self._watch(resync_at)
                failures = 0
            except Exception as exc:
                if self._stopping.is_set():
                    break
                self._metrics.watch_restart(self.kind)
                if _is_gone(exc):
                    log.info("watch %s: %s; relisting", self.kind, _describe(exc))
                    self.resource_version = None
                    failures = 0
                else:
                    # A watch that ran well for a while before it broke starts
                    # the backoff over: a load balancer cutting idle streams
                    # every few minutes must not push the delay to its cap.
                    if time.monotonic() - started > settings.backoff_max:
                        failures = 0
                    failures += 1
                    delay = settings.backoff(failures)
                    log.warning(
                        "watch %s failed (%d in a row): %s; retrying in %.1fs",
                        self.kind,
                        failures,
                        _describe(exc),
                        delay,
                    )
                    self._stopping.wait(delay)
                    continue
            # Never spin faster than the initial backoff, even when a server
            # ends every watch at once without an error.
            elapsed = time.monotonic() - started
            if elapsed < settings.backoff_initial:
                self._stopping.wait(settings.backoff_initial - elapsed)
        log.debug("watch %s stopped", self.kind)

    def _relist(self) -> None:
        items: dict[K, Labels] = {}
        continue_token: str | None = None
        resource_version = ""
        while True:
            page = self._fetch_page(continue_token)
            for obj in page.get("items") or ():
                key = self._key_of(obj)
                if key is not None:
                    items[key] = self._value_of(obj)
            metadata = page.get("metadata") or {}
            resource_version = metadata.get("resourceVersion") or resource_version
            continue_token = metadata.get("continue") or None
            if continue_token is None or self._stopping.is_set():
                break
        if not resource_version:
            raise WatchError(f"list of {self.kind} carried no metadata.resourceVersion")
        if self._stopping.is_set():
            return
        self._items = items  # one atomic swap: readers see the old or the new list
        self.resource_version = resource_version
        self._metrics.cache_size(self.kind, len(items))
        if not self.listed.is_set():
            self.listed.set()
            self._metrics.synced(self.kind, True)
        log.debug("listed %d %s at resourceVersion %s", len(items), self.kind, resource_version)

    def _fetch_page(self, continue_token: str | None) -> dict[str, Any]:
        settings = self._settings
        response = self._list_call(
            limit=settings.page_size,
            _continue=continue_token,
            _preload_content=False,
            _request_timeout=(settings.connect_timeout, settings.list_timeout),
        )
        with self._tracking(response):
            body = response.read()
        page = json.loads(body)
        if not isinstance(page, dict):
            raise WatchError(f"list of {self.kind}: expected an object, got {type(page).__name__}")
        return page

    def _watch(self, resync_at: float) -> None:
        settings = self._settings
        remaining = resync_at - time.monotonic()
        if remaining <= 0:
            return
        jittered = settings.watch_timeout * random.uniform(1.0, 2.0)
        timeout = max(1, math.ceil(min(remaining, jittered)))
        response = self._list_call(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(settings.connect_timeout, timeout + settings.read_slack),
        )
        with self._tracking(response):
            for line in _lines(response):
                if self._stopping.is_set():
                    return
                self._apply(json.loads(line))

    def _apply(self, event: Any) -> None:
        if not isinstance(event, dict):
            raise WatchError(f"watch of {self.kind}: expected an event object")
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            raise WatchError(f"watch of {self.kind}: {kind} event without an object")
        if kind == "ERROR":
            message = f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}"
            if obj.get("code") == _HTTP_GONE:
                raise _Gone(message)
            raise WatchError(f"watch of {self.kind} ended with an error: {message}")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            key = self._key_of(obj)
            if key is not None:
                if kind == "DELETED":
                    self._items.pop(key, None)
                else:
                    self._items[key] = self._value_of(obj)
                self._metrics.cache_size(self.kind, len(self._items))
        elif kind != "BOOKMARK":
            log.debug("watch %s: ignoring event type %r", self.kind, kind)
            return
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and metadata.get("resourceVersion"):
            self.resource_version = str(metadata["resourceVersion"])

    def _tracking(self, response: Any) -> _Tracked:
        return _Tracked(self, response)


class _Tracked:
    """Holds the in-flight response where ``stop()`` can interrupt it; closes it after."""

    def __init__(self, cache: WatchCache[Any], response: Any) -> None:
        self._cache = cache
        self._response = response

    def __enter__(self) -> None:
        with self._cache._response_lock:
            self._cache._response = self._response
        if self._cache._stopping.is_set():
            _interrupt(self._response)

    def __exit__(self, *exc_info: object) -> None:
        with self._cache._response_lock:
            self._cache._response = None
        # Closing a connection that broke may fail too; there is nothing left to do.
        with contextlib.suppress(Exception):
            self._response.close()
            self._response.release_conn()


def _interrupt(response: Any) -> None:
    # urllib3 >= 2.3 can shut the socket down under a blocked reader; older
    # versions need the socket itself.
    try:
        response.shutdown()
    except Exception:
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-delimited JSON events of a watch, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _is_gone(exc: BaseException) -> bool:
    return isinstance(exc, _Gone) or (isinstance(exc, ApiException) and exc.status == _HTTP_GONE)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- what is stored ----------------------------------------------------------


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _string_map(value: object, keep: Callable[[str], bool] | None = None) -> Labels:
    if not isinstance(value, dict) or not value:
        return _EMPTY
    kept = {
        k: v
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, str) and (keep is None or keep(k))
    }
    return MappingProxyType(kept) if kept else _EMPTY


def _namespace_key(obj: Mapping[str, Any]) -> str | None:
    name = _metadata(obj).get("name")
    return name if isinstance(name, str) and name else None


def _namespace_labels(obj: Mapping[str, Any]) -> Labels:
    return _string_map(_metadata(obj).get("labels"))


def _service_account_key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    metadata = _metadata(obj)
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if isinstance(namespace, str) and namespace and isinstance(name, str) and name:
        return namespace, name
    return None


def _annotations_keeper(prefixes: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Labels]:
    def keep(key: str) -> bool:
        return key.startswith(prefixes)

    def annotations(obj: Mapping[str, Any]) -> Labels:
        return _string_map(_metadata(obj).get("annotations"), keep)

    return annotations


# --- the facts source ----------------------------------------------------------


class KubeFacts:
    """Namespace labels and service accounts for admission, from watch-fed caches.

    ``start()`` launches the two cache threads and returns at once; ``synced``
    turns True when both have listed once (``/readyz`` waits for it) and stays
    True through later relists. ``stop()`` ends the threads (within
    ``stop_timeout``; they are daemons, so a thread stuck in a connect can't
    hold the process) and the lookup pool. The ApiClient stays the caller's
    to close.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        metrics: KubeMetrics | None = None,
        settings: WatchSettings | None = None,
        lookup_budget: float = 0.5,
        lookup_workers: int = 4,
        annotation_prefixes: tuple[str, ...] = IDENTITY_ANNOTATION_PREFIXES,
        stop_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        self._api_client: Any = api_client  # close() is untyped in some client versions
        self._owns_client = owns_client
        self._metrics: KubeMetrics = metrics or NullKubeMetrics()
        settings = settings or WatchSettings()
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._lookup_budget = lookup_budget
        self._stop_timeout = stop_timeout
        self._annotations = _annotations_keeper(annotation_prefixes)
        self.namespaces: WatchCache[str] = WatchCache(
            NAMESPACES,
            self._core.list_namespace,
            key_of=_namespace_key,
            value_of=_namespace_labels,
            settings=settings,
            metrics=self._metrics,
        )
        self.service_accounts: WatchCache[tuple[str, str]] = WatchCache(
            SERVICE_ACCOUNTS,
            self._core.list_service_account_for_all_namespaces,
            key_of=_service_account_key,
            value_of=self._annotations,
            settings=settings,
            metrics=self._metrics,
        )
        self._caches: tuple[WatchCache[Any], ...] = (self.namespaces, self.service_accounts)
        self._lookups = ThreadPoolExecutor(
            max_workers=lookup_workers, thread_name_prefix="kube-lookup"
        )

    @classmethod
    def from_config(
        cls, kubeconfig: Path | None, *, metrics: KubeMetrics | None = None, **options: Any
    ) -> KubeFacts:
        """A KubeFacts on its own client (see ``load_api_client``), closed by ``stop()``.
        Raises KubeConfigError."""
        client = load_api_client(kubeconfig)
        return cls(client, metrics=metrics, owns_client=True, **options)

    async def start(self) -> None:
        for cache in self._caches:
            self._metrics.synced(cache.kind, False)
            cache.start()

    async def stop(self) -> None:
        for cache in self._caches:
            cache.stop()
        deadline = time.monotonic() + self._stop_timeout

        def join_all() -> None:
            for cache in self._caches:
                if not cache.join(max(0.0, deadline - time.monotonic())):
                    log.warning(
                        "watch %s did not stop in time; left to exit with the process", cache.kind
                    )

        await asyncio.to_thread(join_all)
        self._lookups.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self._api_client.close()

    @property
    def synced(self) -> bool:
        return all(cache.listed.is_set() for cache in self._caches)

    async def wait_synced(self, timeout: float) -> bool:
        """True once both caches have listed, False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not self.synced:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def cache_sizes(self) -> dict[str, int]:
        return {cache.kind: len(cache) for cache in self._caches}

    def namespace_labels(self, namespace: str) -> Labels | None:
        return self.namespaces.get(namespace)

    async def service_account(self, namespace: str, name: str) -> ServiceAccountFact:
        cached = self.service_accounts.get((namespace, name))
        if cached is not None:
            return ServiceAccountFact(status="found", annotations=cached)
        what = f"service account {namespace}/{name}"
        try:
            loop = asyncio.get_running_loop()
            read = loop.run_in_executor(self._lookups, self._read_service_account, namespace, name)
            annotations = await asyncio.wait_for(read, self._lookup_budget)
            return ServiceAccountFact(status="found", annotations=annotations)
        except ApiException as exc:
            if exc.status == _HTTP_NOT_FOUND:
                return ServiceAccountFact(status="missing")
            detail = f"HTTP {exc.status} {exc.reason}" if exc.status else "connection failed"
        except TimeoutError:
            detail = f"no answer within {self._lookup_budget:g}s"
        except Exception as exc:
            detail = "connection failed" if _is_connection_error(exc) else type(exc).__name__
            log.debug("lookup of %s failed", what, exc_info=True)
        self._metrics.lookup_error(SERVICE_ACCOUNTS)
        log.warning("lookup of %s failed: %s", what, detail)
        return ServiceAccountFact(
            status="error",
            error=f"the Kubernetes API could not be reached to read {what} ({detail})",
        )

    def _read_service_account(self, namespace: str, name: str) -> Labels:
        # Without preloading, the client returns the raw urllib3 response.
        response: Any = self._core.read_namespaced_service_account(
            name,
            namespace,
            _preload_content=False,
            _request_timeout=self._lookup_budget,
        )
        try:
            obj = json.loads(response.read())
        finally:
            response.release_conn()
        annotations = self._annotations(obj if isinstance(obj, dict) else {})
        self.service_accounts.remember((namespace, name), annotations)
        return annotations

    async def facts_for(self, namespace: str, pod: Mapping[str, Any], policy: Policy) -> Facts:
        """What the rules may know about ``pod`` in ``namespace`` (never raises)."""
        service_account = None
        if policy.service_accounts.lookup:
            if namespace:
                service_account = await self.service_account(
                    namespace, effective_service_account(pod)[1]
                )
            else:
                service_account = ServiceAccountFact(
                    status="error", error="the request names no namespace to look up"
                )
        return Facts(
            namespace=namespace,
            namespace_labels=self.namespace_labels(namespace),
            service_account=service_account,
        )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


# --- registration (§6): applying what webhook.registration builds ----------------


def _operations(
    api_client: kubernetes.client.ApiClient, kind: str
) -> tuple[ListCall, ListCall, ListCall, ListCall]:
    api = kubernetes.client.AdmissionregistrationV1Api(api_client)
    if kind == "MutatingWebhookConfiguration":
        return (
            api.read_mutating_webhook_configuration,
            api.create_mutating_webhook_configuration,
            api.replace_mutating_webhook_configuration,
            api.delete_mutating_webhook_configuration,
        )
    if kind == "ValidatingWebhookConfiguration":
        return (
            api.read_validating_webhook_configuration,
            api.create_validating_webhook_configuration,
            api.replace_validating_webhook_configuration,
            api.delete_validating_webhook_configuration,
        )
    raise ValueError(f"not a webhook configuration kind: {kind!r}")


def register(
    api_client: kubernetes.client.ApiClient, configs: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Create each configuration, or replace it (optimistically, with the
    existing resourceVersion). Returns one line per object, e.g.
    ``mutatingwebhookconfiguration/task-pod-webhook created``."""
    done = []
    for config in configs:
        kind = str(config["kind"])
        name = str(config["metadata"]["name"])
        read, create, replace, _ = _operations(api_client, kind)
        body = copy.deepcopy(dict(config))
        try:
            response = read(name, _preload_content=False)
        except ApiException as exc:
            if exc.status != _HTTP_NOT_FOUND:
                raise
            create(body)
            done.append(f"{kind.lower()}/{name} created")
            continue
        try:
            existing = json.loads(response.read())
        finally:
            response.release_conn()
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        replace(name, body)
        done.append(f"{kind.lower()}/{name} configured")
    return done


def unregister(
    api_client: kubernetes.client.ApiClient, name: str = "task-pod-webhook"
) -> list[str]:
    """Delete both configurations; one that is already gone is fine."""
    done = []
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        _, _, _, delete = _operations(api_client, kind)
        try:
            delete(name)
        except ApiException as exc:
            if exc.status != _HTTP_NOT_FOUND:
                raise
            done.append(f"{kind.lower()}/{name} not found")
            continue
        done.append(f"{kind.lower()}/{name} deleted")
    return done

"""``KubeFacts``: namespace labels and service accounts for admission, answered from
the watch-fed caches of ``kube.informer``.

A service account or namespace missing from the cache (created a moment ago,
or the cache not synced yet) is read with ONE direct GET within a small
budget: a 404 is ``missing``; a timeout or any other failure is ``error`` (for
a service account the policy's ``onLookupError`` decides; a namespace's labels
stay unknown, which profiles answer the same way), never an exception into the
request path.

A storm of reviews naming the same missing object costs one API call:

- concurrent lookups of one object share one call (coalesced);
- a 404 is remembered for ``MISSING_TTL`` seconds (an account created since
  reaches the watch cache, which is asked first, within milliseconds);
- a failure is remembered for ``ERROR_TTL`` seconds, shorter: against a silent
  API every review would otherwise wait the whole budget again, and a second
  is about how long the watch needs to notice the API is back anyway;
- the lookup client makes no retries of its own (urllib3 retries 3 times by
  default, each attempt with the full timeout, so one lookup could hold a pool
  thread 4 budgets long); a lookup still queued when its budget runs out is
  cancelled before it ever connects.

Failing lookups log one line when they start failing and one when they succeed
again, not one per review (the metric counts each).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from webhook.kube.client import (
    HTTP_NOT_FOUND,
    IDENTITY_ANNOTATION_PREFIXES,
    NAMESPACES,
    SERVICE_ACCOUNTS,
    KubeMetrics,
    Labels,
    NullKubeMetrics,
    load_api_client,
)
from webhook.kube.informer import WatchCache, WatchSettings
from webhook.kube.objects import (
    annotations_keeper,
    namespace_key,
    namespace_labels,
    service_account_key,
)
from webhook.policy import Policy
from webhook.rules.base import Facts, ServiceAccountFact
from webhook.rules.service_accounts import effective_service_account

log = logging.getLogger(__name__)

MISSING_TTL = 2.0  # seconds a 404 is remembered
ERROR_TTL = 1.0  # seconds a failed lookup is remembered
REMEMBERED_MAX = 10_000  # remembered outcomes before expired ones are pruned


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
        self._annotations = annotations_keeper(annotation_prefixes)
        self.namespaces: WatchCache[str] = WatchCache(
            NAMESPACES,
            self._core.list_namespace,
            key_of=namespace_key,
            value_of=namespace_labels,
            settings=settings,
            metrics=self._metrics,
        )
        self.service_accounts: WatchCache[tuple[str, str]] = WatchCache(
            SERVICE_ACCOUNTS,
            self._core.list_service_account_for_all_namespaces,
            key_of=service_account_key,
            value_of=self._annotations,
            settings=settings,
            metrics=self._metrics,
        )
        self._caches: tuple[WatchCache[Any], ...] = (self.namespaces, self.service_accounts)
        self._lookups = ThreadPoolExecutor(
            max_workers=lookup_workers, thread_name_prefix="kube-lookup"
        )
        self._lookup_client: Any = _without_retries(api_client)
        self._lookup_core = kubernetes.client.CoreV1Api(self._lookup_client)
        # in flight and briefly remembered lookups, by (kind, namespace, name)
        self._pending: dict[tuple[str, str, str], asyncio.Future[ServiceAccountFact]] = {}
        self._remembered: dict[tuple[str, str, str], tuple[float, ServiceAccountFact]] = {}
        self._failing: str | None = None  # why lookups fail, while they do

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
        self._lookup_client.close()
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

    async def namespace_labels_or_read(self, namespace: str) -> Labels | None:
        """The namespace's labels from the cache or, on a miss (a namespace created a
        moment ago: the watch has not told us yet), one coalesced GET within the
        budget; None when they cannot be known."""
        cached = self.namespaces.get(namespace)
        if cached is not None or not namespace:
            return cached
        fact = await self._coalesced(NAMESPACES, "", namespace)
        return fact.annotations if fact.status == "found" else None

    async def service_account(self, namespace: str, name: str) -> ServiceAccountFact:
        cached = self.service_accounts.get((namespace, name))
        if cached is not None:
            return ServiceAccountFact(status="found", annotations=cached)
        return await self._coalesced(SERVICE_ACCOUNTS, namespace, name)

    async def _coalesced(self, kind: str, namespace: str, name: str) -> ServiceAccountFact:
        """The outcome of one lookup of ``kind``'s object (a namespace's labels, or a
        service account's identity annotations, in ``annotations``), shared by every
        concurrent caller and remembered briefly."""
        key = (kind, namespace, name)
        remembered = self._remembered.get(key)
        if remembered is not None:
            if time.monotonic() < remembered[0]:
                return remembered[1]
            del self._remembered[key]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._lookup(key))
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # shielded: one reviewer giving up does not cancel the others' lookup
        return await asyncio.shield(pending)

    async def _lookup(self, key: tuple[str, str, str]) -> ServiceAccountFact:
        """One GET within the budget (``_pending`` makes it one per object at a time)."""
        kind, namespace, name = key
        what = f"namespace {name}" if kind == NAMESPACES else f"service account {namespace}/{name}"
        try:
            loop = asyncio.get_running_loop()
            deadline = time.monotonic() + self._lookup_budget
            read = loop.run_in_executor(self._lookups, self._read, kind, namespace, name, deadline)
            # on timeout wait_for cancels `read`: a lookup still queued never runs (and one
            # that a thread takes up just then sees its deadline passed)
            found = await asyncio.wait_for(read, self._lookup_budget)
            self._succeeded()
            return ServiceAccountFact(status="found", annotations=found)
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                self._succeeded()
                return self._remember(key, ServiceAccountFact(status="missing"), MISSING_TTL)
            detail = f"HTTP {exc.status} {exc.reason}" if exc.status else "connection failed"
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):  # ours, or the client's
            detail = f"no answer within {self._lookup_budget:g}s"
        except Exception as exc:
            detail = "connection failed" if _is_connection_error(exc) else type(exc).__name__
            log.debug("lookup of %s failed", what, exc_info=True)
        self._metrics.lookup_error(kind)
        if self._failing is None:
            log.warning(
                "Kubernetes API lookups failing (%s, reading %s); "
                "logged again only when they succeed",
                detail,
                what,
            )
        self._failing = detail
        fact = ServiceAccountFact(status="error", error=f"reading {what}: {detail}")
        return self._remember(key, fact, ERROR_TTL)

    def _succeeded(self) -> None:
        if self._failing is not None:
            log.warning("Kubernetes API lookups succeed again (they failed: %s)", self._failing)
            self._failing = None

    def _remember(
        self, key: tuple[str, str, str], fact: ServiceAccountFact, ttl: float
    ) -> ServiceAccountFact:
        now = time.monotonic()
        if len(self._remembered) >= REMEMBERED_MAX:
            expired = [k for k, (until, _) in self._remembered.items() if until <= now]
            for k in expired:
                del self._remembered[k]
            if len(self._remembered) >= REMEMBERED_MAX:
                self._remembered.clear()
        self._remembered[key] = (now + ttl, fact)
        return fact

    def _read(self, kind: str, namespace: str, name: str, deadline: float) -> Labels:
        """GET the object (in a lookup thread); what the cache keeps of it, remembered there."""
        remaining = deadline - time.monotonic()
        if remaining < self._lookup_budget / 10:
            raise TimeoutError  # (almost) nobody waits for this answer any more
        # Without preloading, the client returns the raw urllib3 response.
        options: dict[str, Any] = {"_preload_content": False, "_request_timeout": remaining}
        if kind == NAMESPACES:
            response: Any = self._lookup_core.read_namespace(name, **options)
        else:
            response = self._lookup_core.read_namespaced_service_account(name, namespace, **options)
        try:
            obj = json.loads(response.read())
        finally:
            response.release_conn()
        obj = obj if isinstance(obj, dict) else {}
        if kind == NAMESPACES:
            labels = namespace_labels(obj)
            self.namespaces.remember(name, labels)
            return labels
        annotations = self._annotations(obj)
        self.service_accounts.remember((namespace, name), annotations)
        return annotations

    async def facts_for(self, namespace: str, pod: Mapping[str, Any], policy: Policy) -> Facts:
        """What the rules may know about ``pod`` in ``namespace`` (never raises)."""
        service_account = None
        if policy.looks_up_service_accounts:
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
            namespace_labels=await self.namespace_labels_or_read(namespace),
            service_account=service_account,
        )


def _without_retries(api_client: kubernetes.client.ApiClient) -> kubernetes.client.ApiClient:
    """A client like `api_client` whose requests are never retried by urllib3."""
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)

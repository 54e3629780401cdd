"""``KubeFacts``: namespace labels and service accounts for admission, answered from
the watch-fed caches of ``kube.informer``.

A service account missing from the cache (created a moment ago, or the
cache not synced yet) is read with ONE direct GET within a small budget: a
404 is ``missing``; a timeout or any other failure is ``error`` (the policy's
``onLookupError`` decides), never an exception into the request path.

A storm of reviews naming the same missing account costs one API call:

- concurrent lookups of one account share one call (coalesced);
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
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from webhook.kube.client import (
    EMPTY_MAP,
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
from webhook.policy import Policy
from webhook.rules.base import Facts, ServiceAccountFact
from webhook.rules.service_accounts import effective_service_account

log = logging.getLogger(__name__)

MISSING_TTL = 2.0  # seconds a 404 is remembered
ERROR_TTL = 1.0  # seconds a failed lookup is remembered
REMEMBERED_MAX = 10_000  # remembered outcomes before expired ones are pruned


# --- what is stored ----------------------------------------------------------


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _string_map(value: object, keep: Callable[[str], bool] | None = None) -> Labels:
    if not isinstance(value, dict) or not value:
        return EMPTY_MAP
    kept = {
        sys.intern(k): v  # keys repeat across objects: one copy each (issue 13, ≤ 0.5 KiB)
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, str) and (keep is None or keep(k))
    }
    return MappingProxyType(kept) if kept else EMPTY_MAP


def _namespace_key(obj: Mapping[str, Any]) -> str | None:
    name = _metadata(obj).get("name")
    return sys.intern(name) if isinstance(name, str) and name else None


def _namespace_labels(obj: Mapping[str, Any]) -> Labels:
    return _string_map(_metadata(obj).get("labels"))


def _service_account_key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    metadata = _metadata(obj)
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if isinstance(namespace, str) and namespace and isinstance(name, str) and name:
        return sys.intern(namespace), name  # shared by every account of the namespace
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
        self._lookup_client: Any = _without_retries(api_client)
        self._lookup_core = kubernetes.client.CoreV1Api(self._lookup_client)
        self._pending: dict[tuple[str, str], asyncio.Future[ServiceAccountFact]] = {}
        self._remembered: dict[tuple[str, str], tuple[float, ServiceAccountFact]] = {}
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

    async def service_account(self, namespace: str, name: str) -> ServiceAccountFact:
        key = (namespace, name)
        cached = self.service_accounts.get(key)
        if cached is not None:
            return ServiceAccountFact(status="found", annotations=cached)
        remembered = self._remembered.get(key)
        if remembered is not None:
            if time.monotonic() < remembered[0]:
                return remembered[1]
            del self._remembered[key]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._lookup(namespace, name))
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # shielded: one reviewer giving up does not cancel the others' lookup
        return await asyncio.shield(pending)

    async def _lookup(self, namespace: str, name: str) -> ServiceAccountFact:
        """One GET within the budget (``_pending`` makes it one per account at a time)."""
        what = f"service account {namespace}/{name}"
        try:
            loop = asyncio.get_running_loop()
            deadline = time.monotonic() + self._lookup_budget
            read = loop.run_in_executor(
                self._lookups, self._read_service_account, namespace, name, deadline
            )
            # on timeout wait_for cancels `read`: a lookup still queued never runs (and one
            # that a thread takes up just then sees its deadline passed)
            annotations = await asyncio.wait_for(read, self._lookup_budget)
            self._succeeded()
            return ServiceAccountFact(status="found", annotations=annotations)
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                self._succeeded()
                return self._remember(
                    (namespace, name), ServiceAccountFact(status="missing"), MISSING_TTL
                )
            detail = f"HTTP {exc.status} {exc.reason}" if exc.status else "connection failed"
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):  # ours, or the client's
            detail = f"no answer within {self._lookup_budget:g}s"
        except Exception as exc:
            detail = "connection failed" if _is_connection_error(exc) else type(exc).__name__
            log.debug("lookup of %s failed", what, exc_info=True)
        self._metrics.lookup_error(SERVICE_ACCOUNTS)
        if self._failing is None:
            log.warning(
                "Kubernetes API lookups failing (%s, reading %s); "
                "logged again only when they succeed",
                detail,
                what,
            )
        self._failing = detail
        fact = ServiceAccountFact(status="error", error=f"reading {what}: {detail}")
        return self._remember((namespace, name), fact, ERROR_TTL)

    def _succeeded(self) -> None:
        if self._failing is not None:
            log.warning("Kubernetes API lookups succeed again (they failed: %s)", self._failing)
            self._failing = None

    def _remember(
        self, key: tuple[str, str], fact: ServiceAccountFact, ttl: float
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

    def _read_service_account(self, namespace: str, name: str, deadline: float) -> Labels:
        remaining = deadline - time.monotonic()
        if remaining < self._lookup_budget / 10:
            raise TimeoutError  # (almost) nobody waits for this answer any more
        # Without preloading, the client returns the raw urllib3 response.
        response: Any = self._lookup_core.read_namespaced_service_account(
            name,
            namespace,
            _preload_content=False,
            _request_timeout=remaining,
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


def _without_retries(api_client: kubernetes.client.ApiClient) -> kubernetes.client.ApiClient:
    """A client like `api_client` whose requests are never retried by urllib3."""
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)

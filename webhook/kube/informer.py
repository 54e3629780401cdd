"""**Facts.** ``kube.facts.KubeFacts`` keeps two in-memory caches, Namespaces (name →
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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException

from webhook.kube.client import HTTP_GONE, KubeMetrics, Labels, ListCall

log = logging.getLogger(__name__)


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
            if obj.get("code") == HTTP_GONE:
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
    return isinstance(exc, _Gone) or (isinstance(exc, ApiException) and exc.status == HTTP_GONE)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""Prometheus collectors behind a small interface.

One process (``--workers 1``, the default): a plain in-memory registry, served
by the process itself. ``--workers N``: the supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, so the same collectors
write their values to per-process files there, and the supervisor serves them
all, merged, on the one ``--metrics-port`` (``serving.supervisor``). Counters
and the histogram add up over workers, dead ones included; each gauge says how
its workers' values merge (``multiprocess_mode``, ignored in one process):

- ``in_flight``: ``livesum``, the reviews being answered by the live workers.
- ``policy_info``: ``livemax`` per hash, 1 while any live worker enforces that
  policy (two hashes at 1 while the workers are mid-reload); the superseded
  hash drops to 0, since a file keeps a series the process has cleared.
- ``certificate_expiry``: ``livemin``, the soonest expiry among live workers,
  so that a worker that failed to reload a renewed certificate still alerts.
- ``cache_objects``: ``livemax``; every worker holds a full copy of the caches,
  so a sum would count each object once per worker.
- ``cache_synced``: ``livemin``, 1 only when every live worker has synced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only double the scrape

_LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tpw_admission_requests",
            "Admission reviews answered (profile: a name from the policy, or base).",
            # `webhook`, not `endpoint`: prometheus-operator gives every scraped series an
            # `endpoint` label (the port name), which would rename ours `exported_endpoint`.
            ["webhook", "operation", "decision", "profile"],
            registry=r,
        )
        self.latency = Histogram(
            "tpw_admission_duration_seconds",
            "Time to answer an admission review.",
            ["webhook"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tpw_admission_in_flight",
            "Admission reviews being answered.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.violations = Counter(
            "tpw_violations", "Policy violations found, by rule.", ["rule"], registry=r
        )
        self.mutations = Counter(
            "tpw_mutations",
            "Reviews patched, by rule that changed the pod.",
            ["rule"],
            registry=r,
        )
        self.http_errors = Counter(
            "tpw_http_errors",
            "Requests refused before admission, by HTTP status.",
            ["status"],
            registry=r,
        )
        self.internal_errors = Counter(
            "tpw_internal_errors", "Bugs turned into errored responses.", registry=r
        )
        self.policy_reloads = Counter(
            "tpw_policy_reloads", "Policy file reloads, by result.", ["result"], registry=r
        )
        self.policy_reload_ok = Gauge(
            "tpw_policy_last_reload_successful",
            "1 unless the last policy reload failed (the old policy then stays in force).",
            registry=r,
            multiprocess_mode="livemin",  # any worker still on the old policy shows
        )
        self.policy_reload_ok.set(1)  # the first load succeeded, or the server did not start
        self.ready = Gauge(
            "tpw_ready",
            "1 while /readyz answers ready, 0 otherwise.",
            registry=r,
            multiprocess_mode="livemin",  # one worker not ready makes the server not ready
        )
        self.policy_info = Gauge(
            "tpw_policy_info",
            "The policy in force (value 1).",
            ["hash"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._policy_hash: str | None = None
        self.certificate_reloads = Counter(
            "tpw_certificate_reloads",
            "Serving certificate reloads, by result.",
            ["result"],
            registry=r,
        )
        self.certificate_expiry = Gauge(
            "tpw_certificate_expiry_timestamp_seconds",
            "Expiry (Unix time) of the serving certificate in force.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.lookup_errors = Counter(
            "tpw_lookup_errors",
            "Kubernetes API lookups that failed, by kind.",
            ["kind"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "tpw_watch_restarts", "Watch streams restarted, by kind.", ["kind"], registry=r
        )
        self.cache_objects = Gauge(
            "tpw_cache_objects",
            "Objects in the watch-fed caches, by kind.",
            ["kind"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.cache_synced = Gauge(
            "tpw_cache_synced",
            "1 once the cache of this kind has synced.",
            ["kind"],
            registry=r,
            multiprocess_mode="livemin",
        )

        # Labelled children by label values: prometheus_client's own lookup takes a
        # lock and re-validates the labels on every call; the hot path skips that.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, family: Any, *values: str) -> Any:
        key = (str(id(family)), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    def observe_decision(
        self,
        webhook: str,
        operation: str,
        verdict: str,
        duration: float,
        *,
        violated: Iterable[str],
        mutated: Iterable[str],
        profile: str = "base",
    ) -> None:
        """One admission review answered: its counters and its latency."""
        self._child(self.requests, webhook, operation, verdict, profile).inc()
        self._child(self.latency, webhook).observe(duration)
        for rule in violated:
            self._child(self.violations, rule).inc()
        for rule in mutated:
            self._child(self.mutations, rule).inc()

    # The kube caches report through these (a Protocol on their side).
    def watch_restart(self, kind: str) -> None:
        self.watch_restarts.labels(kind).inc()

    def lookup_error(self, kind: str) -> None:
        self.lookup_errors.labels(kind).inc()

    def cache_size(self, kind: str, size: int) -> None:
        self.cache_objects.labels(kind).set(size)

    def synced(self, kind: str, synced: bool) -> None:
        self.cache_synced.labels(kind).set(1 if synced else 0)

    def set_policy(self, content_hash: str) -> None:
        previous, self._policy_hash = self._policy_hash, content_hash
        if previous is not None and previous != content_hash:
            self.policy_info.labels(previous).set(0)  # a multiprocess file keeps the series
            self.policy_info.remove(previous)
        self.policy_info.labels(content_hash).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

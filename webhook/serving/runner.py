"""``task-pod-webhook serve``: run the HTTPS server (and its workers).

Shutdown follows the order that keeps a rolling restart invisible to the
apiserver: on SIGTERM ``/readyz`` turns 503 at once (the endpoint is taken out
of the Service), requests keep being served for ``--shutdown-grace`` seconds
(the apiserver may still be routing to us), then the listener closes,
in-flight requests finish, and the process exits 0.

``--workers N`` starts N processes that share the port with SO_REUSEPORT under
the supervisor of ``serving.supervisor``; each loads and reloads the policy and
certificate on its own, and the supervisor serves the metrics of all. A worker
stops as on SIGTERM, without the grace period, when the supervisor dies.
With one worker (the default) there is no supervisor: the one process serves
its own metrics from a plain in-process registry (no files, no extra process).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from webhook.admission.facts import FactsSource, NoKubeFacts
from webhook.policy import Policy, PolicyError
from webhook.policy.store import PolicyStore
from webhook.serving.app import Runtime, create_app, create_metrics_app
from webhook.serving.logs import setup_logging
from webhook.serving.metrics import Metrics
from webhook.serving.settings import DRAIN_TIMEOUT, EXIT_CONFIG, Settings

log = logging.getLogger("task_pod_webhook.serve")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _install_fast_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _tune_gc() -> None:
    """Keep the collector off the request path.

    A large review allocates tens of thousands of short-lived objects, which
    with the default threshold (700) triggers many collections per review,
    and each full one walks every object loaded at start-up. Those are frozen
    (never collected again), and the young generation is allowed to grow.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def _facts_source(settings: Settings, metrics: Metrics) -> FactsSource:
    if settings.no_kube:
        return NoKubeFacts()
    from webhook.kube.client import KubeConfigError, in_cluster
    from webhook.kube.facts import KubeFacts

    try:
        return KubeFacts.from_config(settings.kubeconfig, metrics=metrics)
    except KubeConfigError as exc:
        if settings.kubeconfig is not None or in_cluster():
            raise
        log.warning(
            "no Kubernetes API configuration found; serving without API access "
            "(namespace labels and service account lookups unavailable)",
            extra={"error": str(exc)},
        )
        return NoKubeFacts(f"no Kubernetes API configuration ({exc})")


def _profiles_refused(reason: str) -> Callable[[Policy], list[str]]:
    """Profiles select by namespace labels, which only the API has (SPEC §12)."""

    def check(policy: Policy) -> list[str]:
        if not policy.profiles:
            return []
        names = ", ".join(p.name for p in policy.profiles)
        return [
            f"profiles: the policy has profiles ({names}), which are selected by the labels "
            f"of the pod's namespace, but the server has {reason}; serve with Kubernetes "
            "API access, or use a policy without profiles"
        ]

    return check


def resolve_tls(settings: Settings) -> tuple[Settings, Path | None]:
    """Settings with certificate files, creating the dev certificate when none are given.

    Returns the CA file to tell the user about (dev certificate only)."""
    if settings.tls_cert_file and settings.tls_private_key_file:
        return settings, None
    if settings.tls_cert_file or settings.tls_private_key_file:
        raise ValueError("--tls-cert-file and --tls-private-key-file go together")
    from webhook.certs import ensure_dev_certificate

    files = ensure_dev_certificate(settings.certs_dir)
    return replace(
        settings, tls_cert_file=files.cert, tls_private_key_file=files.key
    ), files.ca_cert


def _banner(settings: Settings, runtime: Runtime, ca_file: Path | None) -> str:
    url = f"https://{settings.host}:{settings.port}"
    policy = str(settings.policy_file) if settings.policy_file else "embedded default"
    lines = [
        f"task-pod-webhook serving {url} (/mutate, /validate, /healthz, /readyz)",
        f"  policy: {policy} (hash {runtime.policies.current.content_hash})",
        f"  certificate: {settings.tls_cert_file}",
    ]
    if settings.metrics_port:
        lines.append(f"  metrics: http://{settings.host}:{settings.metrics_port}/metrics")
    if settings.workers > 1:
        lines.append(f"  workers: {settings.workers}")
    cacert = f"--cacert {ca_file}" if ca_file else "--cacert <your CA file>"
    lines.append(
        f"  try: curl -sS {cacert} -H 'Content-Type: application/json' "
        f"--data @examples/review-executor-pod.json {url}/mutate"
    )
    return "\n".join(lines)


async def _serve(settings: Settings, runtime: Runtime, ca_file: Path | None) -> None:
    app = create_app(runtime)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=DRAIN_TIMEOUT
    )
    await runner.setup()
    ssl_context = runtime.certificate.ssl_context if runtime.certificate else None
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        ssl_context=ssl_context,
        reuse_port=settings.reuse_port or None,
        backlog=1024,
    )
    await site.start()
    metrics_runner: web.AppRunner | None = None
    if settings.metrics_port and settings.workers == 1:  # else the supervisor serves them
        metrics_runner = web.AppRunner(
            create_metrics_app(runtime.metrics), handle_signals=False, access_log=None
        )
        await metrics_runner.setup()
        await web.TCPSite(
            metrics_runner,
            settings.host,
            settings.metrics_port,
        ).start()
    if settings.worker_index == 0:
        print(_banner(settings, runtime, ca_file), flush=True)
    # with --workers N the log record factory stamps each record with the worker index
    log.info("serving", extra={"port": settings.port})

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def terminate(signame: str) -> None:
        if runtime.shutting_down:
            return
        runtime.shutting_down = True
        log.info(
            "shutdown requested: not ready, serving through the grace period",
            extra={"signal": signame, "grace_seconds": settings.shutdown_grace},
        )
        loop.call_later(settings.shutdown_grace, stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, terminate, sig.name)
    parent = multiprocessing.parent_process() if settings.workers > 1 else None

    def supervisor_gone() -> None:
        """No one routes by our readiness nor replaces us: no grace (cut short if the
        parent-death SIGTERM, sent when the supervisor's main thread ends, came first)."""
        assert parent is not None
        loop.remove_reader(parent.sentinel)
        runtime.shutting_down = True
        log.warning("the supervisor is gone: draining in-flight requests and exiting")
        stop.set()

    if parent is not None:  # its pipe closes when the supervisor's last thread ends
        loop.add_reader(parent.sentinel, supervisor_gone)
    await stop.wait()
    log.info("grace period over: closing the listener and draining in-flight requests")
    await site.stop()
    await _drain(runtime, DRAIN_TIMEOUT)
    await runner.cleanup()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    log.info("stopped")


async def _drain(runtime: Runtime, timeout: float) -> None:
    """Wait (at most `timeout` seconds) until no request is being handled.

    Once aiohttp's own shutdown begins it stops reading from every connection, so
    a request whose body was still arriving would wait for it in vain: with the
    listener closed, the requests in progress finish first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while runtime.handling and loop.time() < deadline:
        await asyncio.sleep(0.01)


def run_worker(settings: Settings, ca_file: Path | None = None) -> int:
    """One server process; returns its exit code."""
    setup_logging(worker=settings.worker_index if settings.workers > 1 else None)
    metrics = Metrics()
    try:
        facts = _facts_source(settings, metrics)
    except Exception as exc:
        print(f"error: Kubernetes API access: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    admissible = _profiles_refused(facts.reason) if isinstance(facts, NoKubeFacts) else None
    try:
        policies = PolicyStore(settings.policy_file, admissible)
    except PolicyError as exc:
        for line in exc.errors:
            print(f"error: policy: {line}", file=sys.stderr)
        return EXIT_CONFIG
    from webhook.certs import CertificateError
    from webhook.serving.tls import ServerCertificate

    assert settings.tls_cert_file is not None
    assert settings.tls_private_key_file is not None
    try:
        certificate = ServerCertificate(
            settings.tls_cert_file, settings.tls_private_key_file, settings.client_ca_file
        )
    except CertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    runtime = Runtime(
        settings=settings, policies=policies, facts=facts, metrics=metrics, certificate=certificate
    )
    _install_fast_loop()
    _tune_gc()
    try:
        asyncio.run(_serve(settings, runtime, ca_file))
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _orphaned(settings: Settings) -> bool:
    """A worker whose supervisor has died."""
    parent = multiprocessing.parent_process() if settings.workers > 1 else None
    # Reparented first: the parent-death signal comes when the supervisor's main
    # thread exits, its pipe closes only with its last thread.
    return parent is not None and (os.getppid() != parent.pid or not parent.is_alive())


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies, even by SIGKILL (the parent's
    pipe, watched by ``_serve``, covers other systems and a death before this call)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed", extra={"errno": ctypes.get_errno()})


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise SystemExit(0)  # nothing is being served yet: nothing to drain


def run_child(settings: Settings, ca_file: Path | None) -> None:
    """A worker process under the supervisor (``multiprocessing`` target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    signal.signal(signal.SIGTERM, _stop_while_starting)  # until the loop takes SIGTERM over
    _die_with_parent()
    if _orphaned(settings):
        sys.exit(1)
    sys.exit(run_worker(settings, ca_file))


def serve(settings: Settings) -> int:
    try:
        settings, ca_file = resolve_tls(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.workers <= 1:
        return run_worker(settings, ca_file)
    from webhook.serving.supervisor import Supervisor

    setup_logging()
    return Supervisor(settings, ca_file, run_child).run()

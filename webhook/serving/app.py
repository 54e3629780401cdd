"""The HTTPS transport: decode, guard, call ``admission.decide``, encode.

Two error channels are kept apart: a body that is not an AdmissionReview is an
HTTP 4xx with a JSON error (405 method, 415 content type, 413 size, 408 slow
body, 400 malformed); a pod that breaks the policy is HTTP 200 with
``allowed: false``. A bug anywhere in the admission path becomes an errored
AdmissionResponse (HTTP 200, uid echoed, a reference id in the message and in
the log), never a 5xx, a traceback or a dropped connection; a bug in a probe is
a 500 with the reference, so that it never reads as healthy or ready.

Background work (policy and certificate watchers, the Kubernetes caches) lives
in ``cleanup_ctx``, paired with its teardown.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from webhook import jsonio
from webhook.admission import responses
from webhook.admission.decide import Decision, Endpoint, decide, errored_decision
from webhook.admission.facts import FactsSource
from webhook.admission.protocol import API_VERSIONS, ProtocolError, parse_review
from webhook.policy.store import PolicyStore
from webhook.serving.logs import write_decision
from webhook.serving.metrics import CONTENT_TYPE, Metrics
from webhook.serving.settings import MAX_BODY_BYTES, Settings

if TYPE_CHECKING:
    from webhook.serving.tls import ServerCertificate

log = logging.getLogger("task_pod_webhook.server")


@dataclass
class Runtime:
    """Everything the app needs, injected by whoever builds it."""

    settings: Settings
    policies: PolicyStore
    facts: FactsSource
    metrics: Metrics
    certificate: ServerCertificate | None = None
    shutting_down: bool = False
    handling: int = 0  # requests inside a handler now (their body may still be arriving)


RUNTIME = web.AppKey("runtime", Runtime)


def _json_error(status: int, message: str) -> web.Response:
    body = jsonio.dumps({"error": message, "status": status})
    return web.Response(status=status, body=body, content_type="application/json")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every refusal as a JSON body; a bug as an errored review (or a probe's 500)."""
    runtime = request.app[RUNTIME]
    runtime.handling += 1
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 500:
            raise
        runtime.metrics.http_errors.labels(str(exc.status)).inc()
        response = _json_error(exc.status, exc.reason if exc.text is None else exc.text)
        if exc.status == 405:
            response.headers["Allow"] = "POST" if request.path in ADMISSION_PATHS else "GET"
        return response
    except Exception:
        runtime.metrics.internal_errors.inc()
        return _errored(request)
    finally:
        runtime.handling -= 1


def _errored(request: web.Request) -> web.Response:
    """The answer to a bug: an errored review on the admission paths, a 500 on the others.

    Here the review was not parsed (``_admit`` answers bugs past parsing itself,
    echoing the uid); a probe must never read a bug as healthy or ready."""
    where = f"{request.method} {request.path}"
    if request.path not in ADMISSION_PATHS:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error", extra={"reference": f"{where}:{reference}"})
        return _json_error(500, f"internal error (reference {reference})")
    decision = errored_decision("", where)
    log.exception("unexpected error", extra={"reference": decision.reason})
    payload = jsonio.dumps(responses.review(API_VERSIONS[0], decision.response))
    return web.Response(body=payload, content_type="application/json")


async def _read_body(request: web.Request, timeout: float) -> bytes:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text=f"content type must be application/json, got {request.content_type!r}"
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES,
            actual_size=request.content_length,
            text=f"body of {request.content_length} bytes is over the {MAX_BODY_BYTES} byte limit",
        )
    if request.content.is_eof():
        # The whole body came with the headers (the usual case for a pod): no timer to arm.
        return await request.read()
    try:
        async with asyncio.timeout(timeout):  # no extra task per request, unlike wait_for
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=f"body not received within {timeout:g}s") from None
    except ConnectionResetError:
        # The client hung up half-way through its body: a bad request, not our bug.
        raise web.HTTPBadRequest(text="connection closed before the whole body arrived") from None


def _log_decision(endpoint: str, review: Any, decision: Decision, duration: float) -> None:
    pod = review.object if isinstance(review.object, dict) else {}
    found = pod.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    record = {
        "uid": review.uid,
        "endpoint": endpoint,
        "operation": review.operation,
        "subResource": review.sub_resource or None,
        "namespace": review.namespace,
        "pod": review.name or metadata.get("name") or metadata.get("generateName") or "",
        "decision": decision.verdict,
        "profile": decision.profile,
        "reason": decision.reason or None,
        "rules": list(decision.rules),
        "mutations": len(decision.patch),
        "dryRun": review.dry_run,
        "durationMs": round(duration * 1000, 3),
    }
    write_decision(record)


async def _admit(request: web.Request, endpoint: Endpoint) -> web.Response:
    runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    body = await _read_body(request, runtime.settings.body_timeout)
    started = time.perf_counter()
    try:
        review = parse_review(body)
    except ProtocolError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    metrics.in_flight.inc()
    try:
        try:
            policy = runtime.policies.current
            facts = await runtime.facts.facts_for(review.namespace, review.object, policy)
            decision = decide(review, policy, facts, endpoint)
        except Exception:
            decision = errored_decision(review.uid, "facts")
            log.exception("gathering facts failed", extra={"reference": decision.reason})
        if decision.verdict == "errored":
            metrics.internal_errors.inc()
            error = decision.error
            log.error(
                "errored admission response",
                extra={"reference": decision.reason},
                exc_info=(type(error), error, error.__traceback__) if error else None,
            )
        payload = jsonio.dumps(responses.review(review.api_version, decision.response))
        duration = time.perf_counter() - started
        metrics.observe_decision(
            endpoint,
            review.operation,
            decision.verdict,
            duration,
            violated=(rule for rule, _ in decision.violations),
            mutated=decision.mutated_by,
            profile=decision.profile,
        )
        _log_decision(endpoint, review, decision, duration)
    except Exception:
        # A bug past the decision (encoding, metrics, logging): this review still gets
        # its answer, with the uid and apiVersion the apiserver checks.
        metrics.internal_errors.inc()
        decision = errored_decision(review.uid, f"{endpoint} response")
        log.exception("answering the review failed", extra={"reference": decision.reason})
        payload = jsonio.dumps(responses.review(review.api_version, decision.response))
    finally:
        metrics.in_flight.dec()
    return web.Response(body=payload, content_type="application/json")


async def handle_mutate(request: web.Request) -> web.Response:
    return await _admit(request, "mutate")


async def handle_validate(request: web.Request) -> web.Response:
    return await _admit(request, "validate")


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def readiness(runtime: Runtime) -> dict[str, bool]:
    return {
        "policyLoaded": runtime.policies.current is not None,
        "certificateLoaded": runtime.certificate is not None,
        "cachesSynced": runtime.facts.synced,
        "notShuttingDown": not runtime.shutting_down,
    }


async def handle_readyz(request: web.Request) -> web.Response:
    checks = readiness(request.app[RUNTIME])
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


ADMISSION_PATHS = ("/mutate", "/validate")


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Policy and certificate watchers, and the Kubernetes caches."""
    runtime = app[RUNTIME]
    settings = runtime.settings
    metrics = runtime.metrics
    metrics.set_policy(runtime.policies.current.content_hash)

    metrics.ready.set_function(lambda: 1.0 if all(readiness(runtime).values()) else 0.0)

    def policy_reloaded(ok: bool) -> None:
        metrics.policy_reloads.labels("success" if ok else "failure").inc()
        metrics.policy_reload_ok.set(1 if ok else 0)
        if ok:
            metrics.set_policy(runtime.policies.current.content_hash)

    tasks = [asyncio.create_task(runtime.policies.watch(settings.reload_interval, policy_reloaded))]
    certificate = runtime.certificate
    if certificate is not None:
        metrics.certificate_expiry.set(certificate.not_after.timestamp())

        def certificate_reloaded(ok: bool) -> None:
            metrics.certificate_reloads.labels("success" if ok else "failure").inc()
            if ok and certificate is not None:
                metrics.certificate_expiry.set(certificate.not_after.timestamp())

        tasks.append(
            asyncio.create_task(certificate.watch(settings.reload_interval, certificate_reloaded))
        )
    await runtime.facts.start()
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await runtime.facts.stop()


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware])
    app[RUNTIME] = runtime
    app.add_routes(
        [
            web.post("/mutate", handle_mutate),
            web.post("/validate", handle_validate),
            web.get("/healthz", handle_healthz),
            web.get("/readyz", handle_readyz),
        ]
    )
    app.cleanup_ctx.append(_background)
    return app


async def handle_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


METRICS = web.AppKey("metrics", Metrics)


def create_metrics_app(metrics: Metrics) -> web.Application:
    app = web.Application()
    app[METRICS] = metrics
    app.add_routes([web.get("/metrics", handle_metrics)])
    return app

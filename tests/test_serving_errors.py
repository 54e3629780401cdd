"""The errored path (STYLE rule 7): a bug is an answer, never a 5xx or a dropped connection.

A real server offers no supported way to make our own code fail (the rules are
pure and the protocol guards are tested), so the app is built in-process by
``create_app`` with a collaborator that fails, and driven over real HTTP by
``aiohttp_client``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests import podkit
from webhook.admission.facts import NoKubeFacts
from webhook.policy import Policy
from webhook.policy.store import PolicyStore
from webhook.rules.base import Facts
from webhook.serving.app import Runtime, create_app
from webhook.serving.metrics import Metrics
from webhook.serving.settings import Settings

pytestmark = pytest.mark.slow

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
REFERENCE = re.compile(r"\(reference ([0-9a-f]{12})\)")


class FailingFacts(NoKubeFacts):
    """A facts source whose lookups raise, as a broken cache would."""

    async def facts_for(self, namespace: str, pod: Any, policy: Policy) -> Facts:
        raise RuntimeError("cache exploded")


class BrokenReadiness(NoKubeFacts):
    @property
    def synced(self) -> bool:
        raise RuntimeError("cache state unreadable")


class ExplodingCounter:
    """Stands in for a Prometheus counter whose recording fails."""

    def labels(self, *values: str) -> ExplodingCounter:
        raise RuntimeError("metrics exploded")


def runtime_with(facts: NoKubeFacts | None = None, metrics: Metrics | None = None) -> Runtime:
    return Runtime(
        settings=Settings(no_kube=True, reload_interval=60),
        policies=PolicyStore(None),
        facts=facts or NoKubeFacts(),
        metrics=metrics or Metrics(),
    )


def reference_logged(caplog: pytest.LogCaptureFixture, reference: str) -> logging.LogRecord:
    for record in caplog.records:
        if reference in str(getattr(record, "reference", "")):
            return record
    raise AssertionError(f"no log record with reference {reference}: {caplog.text}")


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
async def test_failing_facts_are_an_errored_review_with_a_reference(
    aiohttp_client: Client,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    api_version: str,
) -> None:
    runtime = runtime_with(facts=FailingFacts())
    client = await aiohttp_client(create_app(runtime))
    body = podkit.review(podkit.pod(), uid="uid-facts", api_version=api_version)

    with caplog.at_level(logging.INFO):
        response = await client.post("/mutate", json=body)
        answer = await response.json()

    assert response.status == 200
    assert answer["apiVersion"] == api_version
    assert answer["kind"] == "AdmissionReview"
    review = answer["response"]
    assert review["uid"] == "uid-facts"
    assert review["allowed"] is False
    assert review["status"]["code"] == 500
    found = REFERENCE.search(review["status"]["message"])
    assert found, review["status"]["message"]
    record = reference_logged(caplog, found.group(1))
    assert record.exc_info is not None  # the traceback is in the log, not in the answer
    assert "cache exploded" not in review["status"]["message"]
    assert runtime.metrics.registry.get_sample_value("tpw_internal_errors_total") == 1
    # The decision line is written straight to stderr (webhook.serving.logs.write_decision).
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    decision = next(line["decision"] for line in lines if line.get("msg") == "admission")
    assert decision["decision"] == "errored"
    assert decision["uid"] == "uid-facts"


async def test_a_bug_after_the_decision_still_answers_the_review(
    aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    metrics.requests = ExplodingCounter()  # type: ignore[assignment]
    client = await aiohttp_client(create_app(runtime_with(metrics=metrics)))
    body = podkit.review(podkit.pod(), uid="uid-late-bug", api_version="admission.k8s.io/v1beta1")

    response = await client.post("/validate", json=body)
    answer = await response.json()

    assert response.status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["kind"] == "AdmissionReview"
    review = answer["response"]
    assert review["uid"] == "uid-late-bug"
    assert review["allowed"] is False
    assert review["status"]["code"] == 500
    found = REFERENCE.search(review["status"]["message"])
    assert found, review["status"]["message"]
    assert reference_logged(caplog, found.group(1)).exc_info is not None
    # the connection is still good for the next review
    again = await client.post("/validate", json=body)
    assert again.status == 200


async def test_a_bug_in_the_readiness_check_is_not_ready(
    aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(create_app(runtime_with(facts=BrokenReadiness())))

    response = await client.get("/readyz")
    answer = await response.json()

    assert response.status == 500  # a probe must never read a bug as "ready"
    assert answer["status"] == 500
    found = REFERENCE.search(answer["error"])
    assert found, answer
    assert reference_logged(caplog, found.group(1)).exc_info is not None
    assert (await client.get("/healthz")).status == 200


class SettingsWithoutTimeout:
    """Settings missing a field: the handler fails before it has parsed the review."""

    reload_interval = 60.0


async def test_a_bug_before_parsing_is_still_an_admission_review(
    aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = runtime_with()
    runtime.settings = SettingsWithoutTimeout()  # type: ignore[assignment]
    client = await aiohttp_client(create_app(runtime))

    response = await client.post("/mutate", json=podkit.review(podkit.pod(), uid="uid-early"))
    answer = await response.json()

    assert response.status == 200
    assert answer["kind"] == "AdmissionReview"
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    review = answer["response"]
    assert review["allowed"] is False
    assert review["status"]["code"] == 500
    found = REFERENCE.search(review["status"]["message"])
    assert found, review["status"]["message"]
    assert reference_logged(caplog, found.group(1)).exc_info is not None
    assert runtime.metrics.registry.get_sample_value("tpw_internal_errors_total") == 1

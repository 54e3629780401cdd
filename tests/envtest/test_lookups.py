"""Service account lookups in the request path against a real apiserver (issue 13).

With ``serviceAccounts.lookup: true`` an account missing from the watch cache
is read with a direct GET. A storm of pod CREATEs naming one account that does
not exist costs the apiserver ONE GET of that account (concurrent lookups
coalesced, the 404 remembered for a moment): counted by the apiserver itself,
in its ``apiserver_request_total`` metric, before and after. An account
created right after the storm is found within seconds: the remembered 404
never hides an account that exists.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster
from webhook.kube.facts import MISSING_TTL

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

NAMESPACE = "lookups"
ACCOUNT = "ghost"
STORM = 30
POLICY = """
serviceAccounts:
  allowed: ["*"]
  lookup: true
"""
FOUND_WITHIN = 5.0  # seconds
MISSING = f'service account "{ACCOUNT}" does not exist'


@pytest.fixture(scope="module")
def webhook(
    cluster: Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    wh.create_namespace(admin, NAMESPACE)
    with wh.registered_webhook(cluster, tmp_path_factory.mktemp("lookups"), POLICY) as server:
        yield server


def _service_account_gets(cluster: Cluster) -> float:
    """GETs of ServiceAccounts the apiserver has served, by its own metrics."""
    status, text = cluster.get("/metrics")
    assert status == 200, text[:300]
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "apiserver_request_total"
        and sample.labels.get("verb") == "GET"
        and sample.labels.get("resource") == "serviceaccounts"
    )


def _create(admin: Any, name: str) -> str:
    """Create a task pod naming ACCOUNT (deleted again when stored): "created", or the refusal."""
    pod = wh.load_yaml(FIXTURES / "kpo-plain" / "pod.yaml")
    pod["metadata"].update(name=name, namespace=NAMESPACE)
    pod["spec"]["serviceAccountName"] = ACCOUNT
    try:
        wh.core(admin).create_namespaced_pod(NAMESPACE, pod)
    except kubernetes.client.ApiException as exc:
        message: str = json.loads(exc.body)["message"]
        return message
    wh.core(admin).delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    return "created"


def test_a_storm_of_creates_naming_a_missing_account_makes_one_get(
    cluster: Cluster, admin: Any, webhook: Server
) -> None:
    before = _service_account_gets(cluster)
    start = threading.Barrier(STORM)

    def one(index: int) -> str:
        start.wait()  # all at once
        return _create(admin, f"storm-{index}")

    started = time.monotonic()
    with ThreadPoolExecutor(STORM) as pool:
        answers = list(pool.map(one, range(STORM)))
    took = time.monotonic() - started
    gets = _service_account_gets(cluster) - before
    print(f"\n{STORM} concurrent creates in {took * 1000:.0f} ms: {gets:g} GET of the account")

    for answer in answers:  # each reached the webhook and was judged on the lookup's 404
        assert "denied the request" in answer and MISSING in answer, answer
    assert took < MISSING_TTL, f"the storm took {took:.1f}s, longer than the 404 is remembered"
    assert gets == 1


def test_the_account_created_after_the_storm_is_found_within_seconds(
    admin: Any, webhook: Server
) -> None:
    assert MISSING in _create(admin, "before-the-account")  # the 404 is remembered now
    wh.core(admin).create_namespaced_service_account(NAMESPACE, {"metadata": {"name": ACCOUNT}})
    created = time.monotonic()
    try:
        names = iter(range(1000))
        wh.wait_until(
            lambda: _create(admin, f"after-{next(names)}") == "created",
            FOUND_WITHIN,
            "a pod of the new account admitted",
            webhook,
        )
        print(f"\naccount created -> found in {(time.monotonic() - created) * 1000:.0f} ms")
    finally:
        wh.core(admin).delete_namespaced_service_account(ACCOUNT, NAMESPACE)

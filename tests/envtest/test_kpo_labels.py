"""KubernetesPodOperator keeps finding its pods through the webhook (issue 15).

KPO finds the pod it created by listing with a label selector built from the
labels it sent, and marks a finished pod with an ``already_checked`` PATCH that
its selector then excludes. Both requests are the ones Airflow's own client
sent, recorded in the fixture's ``kpo-requests.yaml``. With the webhook
registered (default policy): the labels the platform adds never hide the pod
from KPO's selector, KPO's relabel passes and takes the pod out of the
selector as KPO intends, and a pod that sets labels under the platform's
reserved prefix is refused with the gist on the first line of the status
message (what a task log shows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

NAMESPACE = "airflow"
ENFORCED = "task-pod-webhook/enforced"


@pytest.fixture(scope="module")
def webhook(
    cluster: Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    wh.create_namespace(admin, NAMESPACE)
    with wh.registered_webhook(cluster, tmp_path_factory.mktemp("kpo-labels")) as server:
        yield server


def _recorded(case: str) -> dict[str, Any]:
    requests: dict[str, Any] = wh.load_yaml(FIXTURES / case / "kpo-requests.yaml")
    assert requests["findPod"]["path"] == f"/api/v1/namespaces/{NAMESPACE}/pods"
    return requests


def _find_pod(admin: Any, selector: str) -> list[str]:
    """The names KPO's lookup gets back (its GET with the recorded selector)."""
    found = wh.core(admin).list_namespaced_pod(NAMESPACE, label_selector=selector)
    return [pod.metadata.name for pod in found.items]


def test_kpo_finds_its_pod_and_its_relabel_passes(admin: Any, webhook: Server) -> None:
    requests = _recorded("kpo-plain")
    selector = requests["findPod"]["query"]["labelSelector"]
    relabel = requests["relabel"]
    pod = wh.load_yaml(FIXTURES / "kpo-plain" / "pod.yaml")
    name = pod["metadata"]["name"]
    assert relabel["path"] == f"/api/v1/namespaces/{NAMESPACE}/pods/{name}"
    created = wh.core(admin).create_namespaced_pod(NAMESPACE, pod)
    try:
        assert created.metadata.labels[ENFORCED] == "true"  # the webhook did mutate it
        assert _find_pod(admin, selector) == [name]

        # KPO's PATCH, as its client sends it: a dict body goes out as a strategic merge patch.
        assert relabel["contentType"] == "application/strategic-merge-patch+json"
        wh.core(admin).patch_namespaced_pod(name, NAMESPACE, relabel["body"])
        labels = wh.core(admin).read_namespaced_pod(name, NAMESPACE).metadata.labels
        assert labels["already_checked"] == "True"
        assert labels[ENFORCED] == "true"
        assert "already_checked!=True" in selector.split(",")
        assert _find_pod(admin, selector) == []  # done with: KPO skips it from now on
    finally:
        wh.core(admin).delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)


def test_spoofed_platform_labels_are_refused_with_the_gist_first(
    admin: Any, webhook: Server
) -> None:
    pod = wh.load_yaml(FIXTURES / "kpo-spoofed-platform-labels" / "pod.yaml")
    error = wh.api_error(lambda: wh.core(admin).create_namespaced_pod(NAMESPACE, pod))
    assert error.status == 403
    message = json.loads(error.body)["message"]
    first_line = message.splitlines()[0]
    assert first_line.startswith('admission webhook "selector-'), first_line
    assert "denied the request: task-pod-webhook denied pod" in first_line
    assert f'"{NAMESPACE}/{pod["metadata"]["name"]}"' in first_line
    assert "label task-pod-webhook/enforced" in first_line
    assert "reserved for the platform" in first_line
    assert "+1 more" in first_line
    assert "metadata.labels[task-pod-webhook/tier]" in message  # the whole list follows
    selector = _recorded("kpo-spoofed-platform-labels")["findPod"]["query"]["labelSelector"]
    assert _find_pod(admin, selector) == []  # nothing stored for KPO to lose

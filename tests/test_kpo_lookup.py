"""KubernetesPodOperator keeps finding its pods (SPEC §4.1).

KPO finds its pod again (to reattach, log its events, delete it) with a label
selector made of the labels it sent, and marks the pod ``already_checked`` with
a label PATCH when the task ends. ``tools/airflow_fixtures`` recorded both
requests, as KPO's own Kubernetes client sends them, in ``kpo-requests.yaml``
beside every ``kpo-*`` pod. Here, without Airflow: the pod as the webhook
mutates it still matches KPO's selector, and the relabel UPDATE passes with no
patch; under ``reservedLabels: strip`` a spoofed reserved label is rewritten
and the pod is lost, which is why ``deny`` is the default.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES
from webhook.admission.decide import decide
from webhook.offline import apply_patch, pod_request
from webhook.policy import Policy, default_policy, load_policy
from webhook.policy.airflow import AIRFLOW_LABEL_KEYS
from webhook.rules.base import Facts

KPO_CASES = sorted(path.parent for path in FIXTURES.glob("kpo-*/kpo-requests.yaml"))
_KEY = re.compile(r"([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector semantics (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``).

    Set-based terms (``in``, ``notin``) are refused, not guessed: KPO sends none."""
    for term in selector.split(","):
        if "(" in term or " " in term:
            raise ValueError(f"set-based selector term {term!r} is not supported here")
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            ok = labels.get(key) == value
        elif _KEY.fullmatch(term):
            ok = term in labels
        else:
            raise ValueError(f"selector term {term!r} not understood")
        if not ok:
            return False
    return True


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1,b!=2,!c", {"a": "1"}, True),
        ("a=1,b!=2,!c", {"a": "1", "b": "2"}, False),
        ("a=1,b!=2,!c", {"a": "1", "c": "x"}, False),
        ("a==1,b", {"a": "1", "b": ""}, True),
        ("a=1", {"a": "2"}, False),
    ],
)
def test_selector_semantics(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def test_set_based_selectors_are_refused():
    with pytest.raises(ValueError, match="set-based"):
        selector_matches("a in (1,2)", {"a": "1"})


def _load(case_dir: Path) -> tuple[dict[str, Any], Policy, dict[str, Any], dict[str, Any]]:
    case = yaml.safe_load((case_dir / "case.yaml").read_text())
    policy = load_policy(case_dir / case["policy"]) if case.get("policy") else default_policy()
    pod = yaml.safe_load((case_dir / "pod.yaml").read_text())
    requests = yaml.safe_load((case_dir / "kpo-requests.yaml").read_text())
    return case, policy, pod, requests


def _labels(pod: dict[str, Any]) -> dict[str, str]:
    return dict(pod["metadata"].get("labels") or {})


def _created(pod: dict[str, Any], policy: Policy, namespace: str) -> dict[str, Any]:
    request = pod_request(pod, namespace, "kpo-create")
    decision = decide(request, policy, Facts(namespace=namespace))
    assert decision.response["allowed"], decision.response
    return apply_patch(pod, decision)


def test_every_kpo_fixture_has_its_recorded_requests():
    assert len(ALLOWED_KPO_CASES) >= 5
    assert {p.name for p in FIXTURES.glob("kpo-*")} == {c.name for c in KPO_CASES}


@pytest.mark.parametrize("case_dir", KPO_CASES, ids=lambda p: p.name)
def test_recorded_requests_are_kpos_find_and_relabel(case_dir: Path):
    case, _, pod, requests = _load(case_dir)
    namespace, name = case["namespace"], pod["metadata"]["name"]
    find, relabel = requests["findPod"], requests["relabel"]
    assert (find["method"], find["path"]) == ("GET", f"/api/v1/namespaces/{namespace}/pods")
    # KPO's selector finds the pod exactly as KPO sent it (else the record is wrong).
    assert selector_matches(find["query"]["labelSelector"], _labels(pod))
    assert (relabel["method"], relabel["path"]) == (
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}",
    )
    # A strategic merge patch of labels alone: on a map it merges like a JSON merge patch.
    assert relabel["contentType"] == "application/strategic-merge-patch+json"
    assert list(relabel["body"]) == ["metadata"] and list(relabel["body"]["metadata"]) == ["labels"]


# The one case under reservedLabels: strip loses its pod by design: its own test below.
STRIP_CASE = FIXTURES / "kpo-spoofed-platform-labels-strip"
ALLOWED_KPO_CASES = [
    c
    for c in KPO_CASES
    if yaml.safe_load((c / "case.yaml").read_text())["expect"]["allowed"] and c != STRIP_CASE
]


@pytest.mark.parametrize("case_dir", ALLOWED_KPO_CASES, ids=lambda p: p.name)
def test_kpo_finds_the_mutated_pod_and_its_relabel_passes(case_dir: Path):
    case, policy, pod, requests = _load(case_dir)
    namespace = case["namespace"]
    selector = requests["findPod"]["query"]["labelSelector"]
    mutated = _created(pod, policy, namespace)
    assert _labels(mutated) != _labels(pod)  # the webhook did add its label
    assert selector_matches(selector, _labels(mutated))

    # When the task ends KPO PATCHes already_checked=True: an UPDATE of the live pod.
    added = requests["relabel"]["body"]["metadata"]["labels"]
    relabelled = {**mutated, "metadata": {**mutated["metadata"]}}
    relabelled["metadata"]["labels"] = {**_labels(mutated), **added}
    update = replace(
        pod_request(relabelled, namespace, "kpo-relabel"), operation="UPDATE", old_object=mutated
    )
    for endpoint in ("mutate", "validate"):
        decision = decide(update, policy, Facts(namespace=namespace), endpoint)
        assert decision.response["allowed"] and decision.verdict == "allowed", decision.response
        assert decision.patch == []
    # The enforced label is kept, Airflow's labels are as KPO left them, and KPO's
    # selector now skips the pod (already_checked!=True): what KPO means by the label.
    assert _labels(relabelled)["task-pod-webhook/enforced"] == "true"
    airflow = {k: v for k, v in _labels(relabelled).items() if k in AIRFLOW_LABEL_KEYS}
    assert airflow == {
        k: v for k, v in {**_labels(pod), **added}.items() if k in AIRFLOW_LABEL_KEYS
    }
    assert not selector_matches(selector, _labels(relabelled))


def test_strip_loses_the_pod_that_deny_refuses():
    case, strip, pod, requests = _load(STRIP_CASE)
    assert strip.labels.reserved_labels == "strip"
    selector = requests["findPod"]["query"]["labelSelector"]
    assert "task-pod-webhook/enforced=false" in selector  # KPO selects on what it sent
    # strip: admitted, but the rewritten labels no longer match: KPO never finds its pod.
    mutated = _created(pod, strip, case["namespace"])
    assert not selector_matches(selector, _labels(mutated))
    # deny (the default): the same pod is refused at once, the label named on the first line.
    decision = decide(pod_request(pod, case["namespace"], "kpo-deny"), default_policy(), Facts())
    first_line = decision.response["status"]["message"].split("\n", 1)[0]
    assert decision.verdict == "denied"
    assert first_line.endswith(
        'label task-pod-webhook/enforced: prefix "task-pod-webhook/" is reserved for the '
        "platform; +1 more"
    )

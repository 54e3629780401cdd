"""labels: set, fromNamespace, reservedPrefixes; Airflow's labels untouched."""

from __future__ import annotations

import pytest

from tests.podkit import TASK_LABELS, pod, policy
from webhook.policy import PolicyError, default_policy
from webhook.rules.base import REMOVE, Change, Facts
from webhook.rules.labels import check_labels

LABEL_CASES = [
    # (id, pod labels, policy labels section, namespace labels, expected changes)
    (
        "adds the enforced label",
        {},
        None,
        None,
        {("metadata", "labels", "task-pod-webhook/enforced"): "true"},
    ),
    ("already set: nothing", {"task-pod-webhook/enforced": "true"}, None, None, {}),
    (
        "spoofed value overridden",
        {"task-pod-webhook/enforced": "false"},
        None,
        None,
        {("metadata", "labels", "task-pod-webhook/enforced"): "true"},
    ),
    (
        "reserved prefix removed",
        {"task-pod-webhook/enforced": "true", "task-pod-webhook/tier": "x"},
        None,
        None,
        {("metadata", "labels", "task-pod-webhook/tier"): REMOVE},
    ),
    (
        "fromNamespace copies",
        {"task-pod-webhook/enforced": "true"},
        {"fromNamespace": ["team"]},
        {"team": "data"},
        {("metadata", "labels", "team"): "data"},
    ),
    (
        "fromNamespace removes a spoofed key the namespace lacks",
        {"task-pod-webhook/enforced": "true", "team": "other"},
        {"fromNamespace": ["team"]},
        {},
        {("metadata", "labels", "team"): REMOVE},
    ),
    (
        "fromNamespace skipped while namespace labels are unknown",
        {"task-pod-webhook/enforced": "true", "team": "other"},
        {"fromNamespace": ["team"]},
        None,
        {},
    ),
]


@pytest.mark.parametrize(
    ("pod_labels", "section", "ns_labels", "expected"),
    [case[1:] for case in LABEL_CASES],
    ids=[case[0] for case in LABEL_CASES],
)
def test_label_rule(pod_labels, section, ns_labels, expected):
    pol = policy(labels=section) if section else default_policy()
    subject = pod(labels={**TASK_LABELS, **pod_labels})
    outcome = check_labels(subject, pol, Facts(namespace="airflow", namespace_labels=ns_labels))
    assert {c.path: c.value for c in outcome.changes} == expected
    for change in outcome.changes:
        assert change.path[2] not in TASK_LABELS


def test_override_is_a_warning_but_a_first_set_is_not():
    spoofed = check_labels(
        pod(labels={"task-pod-webhook/enforced": "no"}), default_policy(), Facts()
    )
    assert spoofed.notes == ("label task-pod-webhook/enforced=no overridden to true",)
    fresh = check_labels(pod(labels={}), default_policy(), Facts())
    assert fresh.changes == (Change(("metadata", "labels", "task-pod-webhook/enforced"), "true"),)
    assert fresh.notes == ()


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"set": {"dag_id": "x"}}, "'dag_id' is Airflow's own label"),
        ({"fromNamespace": ["try_number"]}, "'try_number' is Airflow's own label"),
        ({"reservedPrefixes": ["airflow"]}, "would remove Airflow's own labels"),
        ({"reservedPrefixes": [""]}, "empty prefix"),
        ({"set": {"bad key!": "v"}}, "labels.set.bad key!"),
        ({"set": {"ok": "not a valid value!"}}, "labels.set.ok"),
    ],
)
def test_policy_cannot_touch_airflow_labels_or_use_invalid_ones(section, fragment):
    with pytest.raises(PolicyError) as caught:
        policy(labels=section)
    assert any(fragment in line for line in caught.value.errors), caught.value.errors

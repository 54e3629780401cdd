"""labels: set, fromNamespace, reservedPrefixes, reservedLabels; Airflow's labels untouched."""

from __future__ import annotations

import json

import pytest

from tests.podkit import TASK_LABELS, pod, policy
from webhook.policy import PolicyError, default_policy
from webhook.rules.base import REMOVE, Change, Facts
from webhook.rules.labels import check_labels, check_labels_on_update

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
@pytest.mark.parametrize("mode", ["create, reservedLabels strip", "update, reservedLabels deny"])
def test_label_rule_puts_labels_right(pod_labels, section, ns_labels, expected, mode):
    """The changes of a CREATE under strip, and of every UPDATE (never denied)."""
    operation, reserved_labels = ("create", "strip") if "strip" in mode else ("update", "deny")
    pol = policy(labels={**(section or {}), "reservedLabels": reserved_labels})
    check = check_labels if operation == "create" else check_labels_on_update
    subject = pod(labels={**TASK_LABELS, **pod_labels})
    outcome = check(subject, pol, Facts(namespace="airflow", namespace_labels=ns_labels))
    assert {c.path: c.value for c in outcome.changes} == expected
    assert outcome.violations == ()
    for change in outcome.changes:
        assert change.path[2] not in TASK_LABELS


TWO_PREFIXES = {"reservedPrefixes": ["task-pod-webhook/", "platform.example.com/"]}
FROM_NS = {"fromNamespace": ["task-pod-webhook/team"]}
RESERVED_CASES = [
    # (id, pod labels, policy labels section, namespace labels, labels denied on CREATE)
    ("a reserved label the policy does not set", {"task-pod-webhook/tier": "x"}, None, None, 1),
    ("an enforced label with another value", {"task-pod-webhook/enforced": "no"}, None, None, 1),
    (
        "an enforced label with the policy's value",
        {"task-pod-webhook/enforced": "true"},
        None,
        None,
        0,
    ),
    ("a label outside the reserved prefixes", {"team": "x", "example.com/a": "b"}, None, None, 0),
    ("the second reserved prefix", {"platform.example.com/x": "1"}, TWO_PREFIXES, None, 1),
    (
        "two reserved labels, both named",
        {"task-pod-webhook/enforced": "no", "task-pod-webhook/tier": "x"},
        None,
        None,
        2,
    ),
    (
        "fromNamespace key with the namespace's value",
        {"task-pod-webhook/team": "data"},
        FROM_NS,
        {"task-pod-webhook/team": "data"},
        0,
    ),
    (
        "fromNamespace key with another value",
        {"task-pod-webhook/team": "other"},
        FROM_NS,
        {"task-pod-webhook/team": "data"},
        1,
    ),
    (
        "fromNamespace key the namespace lacks",
        {"task-pod-webhook/team": "data"},
        FROM_NS,
        {},
        1,
    ),
    (
        "fromNamespace key while namespace labels are unknown: not provably the policy's",
        {"task-pod-webhook/team": "data"},
        FROM_NS,
        None,
        1,
    ),
]


@pytest.mark.parametrize(
    ("pod_labels", "section", "ns_labels", "denied"),
    [case[1:] for case in RESERVED_CASES],
    ids=[case[0] for case in RESERVED_CASES],
)
def test_reserved_labels_are_denied_on_create_and_put_right_on_update(
    pod_labels, section, ns_labels, denied
):
    pol = policy(labels=section) if section else default_policy()
    assert pol.labels.reserved_labels == "deny"  # the default
    subject = pod(labels={**TASK_LABELS, "task-pod-webhook/enforced": "true", **pod_labels})
    facts = Facts(namespace="airflow", namespace_labels=ns_labels)
    created = check_labels(subject, pol, facts)
    reserved = [k for k in pod_labels if k.startswith(pol.labels.reserved)]
    assert len(created.violations) == denied
    for violation in created.violations:
        key = violation.where.removeprefix("metadata.labels[").removesuffix("]")
        assert key in reserved
        prefix = next(p for p in pol.labels.reserved if key.startswith(p))
        assert violation.gist == f'label {key}: prefix "{prefix}" is reserved for the platform'
        assert json.dumps(pod_labels[key]) in violation.what
    # UPDATE: never a violation, the same changes a CREATE under strip makes.
    updated = check_labels_on_update(subject, pol, facts)
    stripping = policy(labels={**(section or {}), "reservedLabels": "strip"})
    assert updated.violations == ()
    assert updated.changes == check_labels(subject, stripping, facts).changes
    if denied:
        assert updated.changes  # a denied label is one an UPDATE would put right


def test_reserved_labels_setting_is_validated():
    with pytest.raises(PolicyError) as caught:
        policy(labels={"reservedLabels": "drop"})
    assert any("labels.reservedLabels" in line for line in caught.value.errors)


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

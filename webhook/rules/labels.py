"""Labels (SPEC §4.1): the platform's labels on every task pod.

- ``labels.set``: ``metadata.labels[key]`` is always the policy's value.
- ``labels.fromNamespace``: ``metadata.labels[key]`` is the namespace's value,
  or absent when the namespace has no such label (the policy owns the key, so a
  pod author cannot spoof it). Skipped while namespace labels are unknown.
- ``labels.reservedPrefixes``: on CREATE, a pod label under one of these
  prefixes, other than one the policy sets to that very value, is a violation
  (``reservedLabels: deny``, the default: KubernetesPodOperator finds its pod
  with a selector made of the labels it sent, so a rewritten label would lose
  the pod) or is removed / put right (``reservedLabels: strip``). On UPDATE
  (``check_labels_on_update``) reserved labels are always removed and enforced
  ones restored: Airflow's relabel PATCHes of live pods must pass.

Airflow's own labels are never touched: the policy model refuses any setting
that would name them.
"""

from __future__ import annotations

import json

from webhook.policy import Policy
from webhook.rules.base import EMPTY, REMOVE, Change, Facts, Outcome, Pod, Violation


def _reserved_violation(key: str, value: object, prefix: str, wanted: str | None) -> Violation:
    detail = f"remove the label from the task (it has the value {json.dumps(value)}"
    if wanted is not None:
        detail += f"; the platform sets it to {json.dumps(wanted)} itself"
    return Violation(
        f"metadata.labels[{key}]",
        f'prefix "{prefix}" is reserved for the platform; {detail})',
        f"label {key}",
    )


def _check(pod: Pod, policy: Policy, facts: Facts, deny_reserved: bool) -> Outcome:
    rules = policy.labels
    labels: dict[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    wanted: dict[str, str | None] = dict(rules.set)
    if rules.from_namespace and facts.namespace_labels is not None:
        for key in rules.from_namespace:
            wanted[key] = facts.namespace_labels.get(key)
    violations: list[Violation] = []
    if deny_reserved:
        for key, label_value in labels.items():
            if not key.startswith(rules.reserved) or wanted.get(key, REMOVE) == label_value:
                continue
            prefix = next(p for p in rules.reserved if key.startswith(p))
            violations.append(_reserved_violation(key, label_value, prefix, wanted.get(key)))
    changes: list[Change] = []
    notes: list[str] = []
    for key, value in wanted.items():
        current = labels.get(key)
        if current == value:
            continue
        path = ("metadata", "labels", key)
        if value is None:
            changes.append(Change(path, REMOVE))
            notes.append(f"label {key}={current} removed (not set on the namespace)")
        else:
            changes.append(Change(path, value))
            if current is not None:
                notes.append(f"label {key}={current} overridden to {value}")
    for key in labels:
        if key not in wanted and key.startswith(rules.reserved):
            changes.append(Change(("metadata", "labels", key), REMOVE))
            notes.append(f"label {key} removed (reserved for the platform)")
    if not (changes or violations):
        return EMPTY
    return Outcome(changes=tuple(changes), notes=tuple(notes), violations=tuple(violations))


def check_labels(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    """A new pod: reserved labels denied (``reservedLabels: deny``) or put right."""
    return _check(pod, policy, facts, policy.labels.reserved_labels == "deny")


def check_labels_on_update(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    """A live pod: labels put right, never denied (Airflow relabels its pods)."""
    return _check(pod, policy, facts, deny_reserved=False)

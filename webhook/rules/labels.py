"""Labels (SPEC §4.1): the platform's labels on every task pod.

- ``labels.set``: ``metadata.labels[key]`` is always the policy's value.
- ``labels.fromNamespace``: ``metadata.labels[key]`` is the namespace's value,
  or absent when the namespace has no such label (the policy owns the key, so a
  pod author cannot spoof it). Skipped while namespace labels are unknown.
- ``labels.reservedPrefixes``: pod labels under these prefixes that the policy
  does not set are removed.

Airflow's own labels are never touched: the policy model refuses any setting
that would name them.
"""

from __future__ import annotations

from webhook.policy import Policy
from webhook.rules.base import EMPTY, REMOVE, Change, Facts, Outcome, Pod


def check_labels(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    rules = policy.labels
    labels: dict[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    wanted: dict[str, str | None] = dict(rules.set)
    if rules.from_namespace and facts.namespace_labels is not None:
        for key in rules.from_namespace:
            wanted[key] = facts.namespace_labels.get(key)
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
    if not changes:
        return EMPTY
    return Outcome(changes=tuple(changes), notes=tuple(notes))

"""Placement and isolation (SPEC §16): where a task pod lands and what it can reach.

Set (a warning for each value of the pod's that is overridden; unset fields are
filled in silently):

``spec.nodeSelector[key]``
  every key of ``placement.nodeSelector``, at the policy's value; the pod's
  other keys are kept.
``spec.tolerations``
  each of ``placement.tolerations`` that the pod lacks is appended. Tolerations
  compare as Kubernetes reads them: key, operator (default ``Equal``), value,
  effect and tolerationSeconds.
``spec.priorityClassName``, ``spec.runtimeClassName``
  the policy's name when it sets one. The apiserver's Priority and RuntimeClass
  plugins run before webhooks and again after a webhook changed the pod; what
  they derived from the pod's own class (``spec.priority``,
  ``spec.preemptionPolicy``, ``spec.overhead``) is removed with it, or they
  would refuse the pod for a value that no longer matches its class.
``spec.automountServiceAccountToken``
  ``false`` when the policy says false (null or true: the pod's own setting
  stands). The apiserver's ServiceAccount plugin has by then mounted the token
  (a projected volume ``kube-api-access-*`` and its mounts in every
  container); that volume and its mounts are removed too.

Violations (a patch can't choose for the pod):

``spec.tolerations[i]``
  with a non-empty ``placement.allowedTolerationKeys``, a toleration whose key
  is neither listed, nor one the policy adds, nor the apiserver's own
  ``node.kubernetes.io/not-ready`` / ``unreachable`` NoExecute toleration. The
  empty key (operator Exists: every taint tolerated) is allowed only when ``""``
  is listed. An empty list restricts nothing.
``spec.nodeName``
  set at creation: the pod skips the scheduler, and with it taints and the
  node selector.
``spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution``
  when *every* node selector term requires a node label that
  ``placement.nodeSelector`` sets to another value (``In`` without the
  policy's value, ``NotIn`` with it, ``DoesNotExist``, ``Gt`` / ``Lt`` it does
  not satisfy): no node could ever take the pod. Terms are OR-ed, so one such
  term among others that can match is left alone. ``matchFields`` (node names)
  go through the scheduler and never conflict with a label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from webhook.policy import Policy
from webhook.policy.families import APISERVER_TOLERATION_KEYS, toleration_identity
from webhook.rules.base import (
    EMPTY,
    REMOVE,
    Change,
    Facts,
    Outcome,
    Pod,
    Violation,
    visit_containers,
)

TOKEN_VOLUME_PREFIX = "kube-api-access-"
REQUIRED_TERMS = (
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
)


def _set_field(
    spec: Mapping[str, Any],
    field: str,
    value: Any,
    changes: list[Change],
    notes: list[str],
    *,
    derived: tuple[str, ...] = (),
) -> None:
    current = spec.get(field)
    if current == value and type(current) is type(value):
        return
    changes.append(Change(("spec", field), value))
    if current is not None and current != "":
        notes.append(f"{field} {_show(current)} overridden to {_show(value)}")
    for name in derived:
        if spec.get(name) is not None:
            changes.append(Change(("spec", name), REMOVE, enforced=False))


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _node_selector(
    spec: Mapping[str, Any], policy: Policy, out: list[Change], notes: list[str]
) -> None:
    current: Mapping[str, Any] = spec.get("nodeSelector") or {}
    for key, value in policy.placement.node_selector.items():
        had = current.get(key)
        if had == value:
            continue
        out.append(Change(("spec", "nodeSelector", key), value))
        if had is not None:
            notes.append(f"nodeSelector {key}={had} overridden to {value}")


def _tolerations(spec: Mapping[str, Any], policy: Policy, out: list[Change]) -> None:
    present: list[dict[str, Any]] = spec.get("tolerations") or []
    have = {toleration_identity(t) for t in present}
    missing = [t.in_pod for t in policy.placement.tolerations if t.identity not in have]
    if not missing:
        return
    if not present:
        out.append(Change(("spec", "tolerations"), missing))
        return
    for offset, toleration in enumerate(missing):
        out.append(Change(("spec", "tolerations", len(present) + offset), toleration))


def _toleration_violations(spec: Mapping[str, Any], policy: Policy) -> list[Violation]:
    allowed = policy.placement.allowed_keys
    if allowed is None:
        return []
    found = []
    for index, toleration in enumerate(spec.get("tolerations") or ()):
        key, operator, _, effect, _ = toleration_identity(toleration)
        if key in allowed or (key in APISERVER_TOLERATION_KEYS and effect == "NoExecute"):
            continue
        what = (
            f"key {json.dumps(key)} is not allowed"
            if key
            else f"an empty key with operator {operator} tolerates every taint and is not allowed"
        )
        found.append(
            Violation(
                f"spec.tolerations[{index}]",
                f"{what} (taints keep task pods off nodes reserved for others); allowed keys: "
                + ", ".join(sorted(json.dumps(k) for k in allowed)),
            )
        )
    return found


def _conflict(expression: Mapping[str, Any], selector: Mapping[str, str]) -> str | None:
    """Why a node carrying the policy's labels fails ``expression``, or None."""
    key = expression.get("key")
    if not isinstance(key, str) or key not in selector:
        return None
    value = selector[key]
    operator = expression.get("operator")
    values = expression.get("values") or []
    ours = f"the platform's nodeSelector sets {key}={value}"
    if operator == "In" and value not in values:
        return f"requires {key} In {json.dumps(values)} but {ours}"
    if operator == "NotIn" and value in values:
        return f"requires {key} NotIn {json.dumps(values)} but {ours}"
    if operator == "DoesNotExist":
        return f"requires that {key} does not exist but {ours}"
    if operator in ("Gt", "Lt") and len(values) == 1:
        try:
            bound, have = int(values[0]), int(value)
        except ValueError:
            return f"requires {key} {operator} {values[0]} but {ours} (not an integer)"
        if (operator == "Gt" and not have > bound) or (operator == "Lt" and not have < bound):
            return f"requires {key} {operator} {values[0]} but {ours}"
    return None


def _affinity_violations(spec: Mapping[str, Any], policy: Policy) -> list[Violation]:
    selector = policy.placement.node_selector
    if not selector:
        return []
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    found = []
    for t, term in enumerate(terms):
        for e, expression in enumerate(term.get("matchExpressions") or ()):
            why = _conflict(expression, selector)
            if why:
                found.append(Violation(f"{REQUIRED_TERMS}[{t}].matchExpressions[{e}]", why))
                break
        else:
            return []  # this term can match a node of the platform's: the pod is schedulable
    tail = (
        "no node could ever take the pod"
        if len(terms) == 1
        else (f"all {len(terms)} terms conflict, so no node could ever take the pod")
    )
    return [Violation(v.where, f"{v.what}: {tail}") for v in found]


def _token_volume(spec: Mapping[str, Any], changes: list[Change]) -> None:
    """Removes the token the ServiceAccount plugin mounted (last index first)."""
    names = set()
    volumes = spec.get("volumes") or []
    for index in reversed(range(len(volumes))):
        volume = volumes[index]
        name = volume.get("name") or ""
        sources = (volume.get("projected") or {}).get("sources") or ()
        if name.startswith(TOKEN_VOLUME_PREFIX) and any(
            s.get("serviceAccountToken") is not None for s in sources
        ):
            names.add(name)
            changes.append(Change(("spec", "volumes", index), REMOVE, enforced=False))
    if not names:
        return
    for ref in visit_containers({"spec": spec}, Facts()):
        mounts = ref.container.get("volumeMounts") or []
        for index in reversed(range(len(mounts))):
            if mounts[index].get("name") in names:
                changes.append(Change((*ref.path, "volumeMounts", index), REMOVE, enforced=False))


def check_placement(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    rules = policy.placement
    spec: Mapping[str, Any] = pod.get("spec") or {}
    changes: list[Change] = []
    notes: list[str] = []
    violations: list[Violation] = []
    node_name = spec.get("nodeName")
    if node_name:
        violations.append(
            Violation(
                "spec.nodeName",
                f"{json.dumps(node_name)} is not allowed: a task pod is placed by the scheduler "
                "(setting nodeName skips its node selector and taints)",
            )
        )
    violations.extend(_toleration_violations(spec, policy))
    violations.extend(_affinity_violations(spec, policy))
    _node_selector(spec, policy, changes, notes)
    _tolerations(spec, policy, changes)
    if rules.priority_class_name:
        derived = ("priority", "preemptionPolicy")
        _set_field(
            spec, "priorityClassName", rules.priority_class_name, changes, notes, derived=derived
        )
    if rules.runtime_class_name:
        _set_field(
            spec,
            "runtimeClassName",
            rules.runtime_class_name,
            changes,
            notes,
            derived=("overhead",),
        )
    if rules.automount_service_account_token is False:
        before = len(changes)
        _set_field(spec, "automountServiceAccountToken", False, changes, notes)
        if len(changes) > before:
            _token_volume(spec, changes)
    if not (changes or violations):
        return EMPTY
    return Outcome(changes=tuple(changes), notes=tuple(notes), violations=tuple(violations))

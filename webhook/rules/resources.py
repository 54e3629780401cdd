"""Resources (SPEC §4.2): every container's requests and limits within bounds.

For each container and init container (ephemeral containers have no
resources), for each resource the policy names (cpu, memory,
ephemeral-storage), with Kubernetes quantity semantics:

1. default: no request and no limit → ``defaults.requests`` / ``defaults.limits``;
   no request but a limit → request := limit (as the apiserver defaults it);
   no limit → ``defaults.limits``;
2. clamp request and limit into [``min``, ``max``] (``minExemptContainers``
   skip ``min``: Airflow's xcom sidecar asks 1m/10Mi by design);
3. a limit below the request is raised to the request;
4. ``requestsEqualLimits``: the request is raised to the limit (Guaranteed QoS).

Fields touched: ``spec.{initContainers,containers}[i].resources.{requests,limits}.<name>``
and the annotation ``task-pod-webhook/original-resources`` (JSON of the values
we changed, ``null`` for unset ones). Values written are always the policy's or
the pod's own spelling. A value the pod set and we changed is a note (a
warning); a value merely unset and filled in is not. An unparsable quantity, or
a pod whose total request (as the scheduler counts it) is above ``maxPerPod``,
is a violation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from webhook import jsonio
from webhook.policy import Policy, quantity
from webhook.policy.families import ResourceBound
from webhook.rules.base import (
    EMPTY,
    Change,
    ContainerRef,
    Facts,
    Outcome,
    Pod,
    Violation,
    grouped,
    visit_containers,
)

ORIGINAL_ANNOTATION = "task-pod-webhook/original-resources"
_NONE: dict[str, Any] = {}  # an absent (or empty) requests / limits map; never written to
_KINDS = ("requests", "limits")

# (spelling as written in the manifest or policy, parsed value)
_Value = tuple[Any, Decimal]


def _settle(
    bound: ResourceBound,
    req: _Value | None,
    lim: _Value | None,
    exempt: bool,
    equal: bool,
) -> tuple[_Value | None, _Value | None, str, str]:
    """Final (request, limit) and the reason for each change."""
    why_req = why_lim = ""
    if req is None and lim is None:
        req, lim = bound.request, bound.limit
        why_req = why_lim = "policy default"
    elif req is None:
        req, why_req = lim, "set to the limit"
    if lim is None:
        lim, why_lim = bound.limit, "policy default"
    low = None if exempt else bound.low
    high = bound.high
    if req is not None:
        if low is not None and req[1] < low[1]:
            req, why_req = low, "policy min"
        if high is not None and req[1] > high[1]:
            req, why_req = high, "policy max"
    if lim is not None:
        if low is not None and lim[1] < low[1]:
            lim, why_lim = low, "policy min"
        if high is not None and lim[1] > high[1]:
            lim, why_lim = high, "policy max"
    if req is not None and lim is not None:
        if lim[1] < req[1]:
            lim, why_lim = req, "raised to the request"
        if equal and req[1] != lim[1]:
            req, why_req = lim, "requests equal limits"
    return req, lim, why_req, why_lim


def _pod_total(requests: list[tuple[ContainerRef, dict[str, Decimal]]], name: str) -> Decimal:
    """The pod's request for ``name`` as the scheduler counts it (k8s PodRequests)."""
    apps = sum(
        (r.get(name, Decimal(0)) for ref, r in requests if ref.kind == "containers"), Decimal(0)
    )
    sidecars = Decimal(0)
    init_peak = Decimal(0)
    for ref, r in requests:
        if ref.kind != "initContainers":
            continue
        value = r.get(name, Decimal(0))
        if ref.container.get("restartPolicy") == "Always":
            sidecars += value
            apps += value
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + value)
    return max(apps, init_peak)


_INVALID: Any = object()  # a value that is not a quantity (a violation was recorded)


def _parsed(
    ref: ContainerRef, kind: str, name: str, raw: Any, violations: list[Violation]
) -> _Value | None:
    """``(raw, parsed)``, None when unset, ``_INVALID`` (and a violation) when unparsable."""
    if raw is None:
        return None
    try:
        return raw, quantity.parse(raw)
    except quantity.QuantityError:
        violations.append(
            ref.violation(f"resources.{kind}.{name} {json.dumps(raw)} is not a valid quantity")
        )
        return _INVALID  # type: ignore[no-any-return]


def check_resources(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    rules = policy.resources
    changes: list[Change] = []
    notes: list[str] = []
    violations: list[Violation] = []
    originals: dict[str, dict[str, dict[str, Any]]] = {}
    final_requests: list[tuple[ContainerRef, dict[str, Decimal]]] = []
    equal = rules.requests_equal_limits
    bounds = rules.bounds
    for ref in visit_containers(pod, facts, ("initContainers", "containers")):
        resources = ref.container.get("resources") or _NONE
        requests = resources.get("requests") or _NONE
        limits = resources.get("limits") or _NONE
        totals: dict[str, Decimal] = {}
        final_requests.append((ref, totals))
        exempt = ref.name in rules.min_exempt_containers
        edits: tuple[list[Change], list[Change]] = ([], [])
        for bound in bounds:
            name = bound.name
            raw_req = requests.get(name)
            raw_lim = limits.get(name)
            if raw_req is None and raw_lim is None and bound.request is bound.limit is None:
                continue  # nothing set and nothing to default: no bound can apply
            before_req = _parsed(ref, "requests", name, raw_req, violations)
            before_lim = _parsed(ref, "limits", name, raw_lim, violations)
            if before_req is _INVALID or before_lim is _INVALID:
                continue
            req, lim, why_req, why_lim = _settle(bound, before_req, before_lim, exempt, equal)
            if req is not None:
                totals[name] = req[1]
            for index, (before, after, why) in enumerate(
                ((before_req, req, why_req), (before_lim, lim, why_lim))
            ):
                if after is None or (before is not None and before[0] == after[0]):
                    continue
                kind = _KINDS[index]
                edits[index].append(
                    Change(("spec", ref.kind, ref.position, "resources", kind, name), after[0])
                )
                if before is not None:  # a value merely unset is filled in silently
                    notes.append(
                        f"{ref.label}: resources.{kind}.{name} {before[0]} changed to "
                        f"{after[0]} ({why})"
                    )
                originals.setdefault(ref.name, {}).setdefault(kind, {})[name] = (
                    None if before is None else before[0]
                )
        for index, current in enumerate((requests, limits)):
            if edits[index]:
                base = ("spec", ref.kind, ref.position, "resources", _KINDS[index])
                changes.extend(grouped(base, current is not _NONE, edits[index]))
    for name, (cap_text, cap) in rules.parsed["maxPerPod"].items():
        total = _pod_total(final_requests, name)
        if total > cap:
            violations.append(
                Violation(
                    "spec.containers[*].resources.requests",
                    f"the pod's total {name} request {total.normalize():f} is above the policy's "
                    f"maxPerPod {cap_text}",
                )
            )
    if originals:
        record = jsonio.dumps_sorted(originals).decode()
        changes.append(
            Change(("metadata", "annotations", ORIGINAL_ANNOTATION), record, enforced=False)
        )
    if not (changes or violations):
        return EMPTY
    return Outcome(changes=tuple(changes), notes=tuple(notes), violations=tuple(violations))

"""``decide``: the one place that wires selection, rules and responses.

Pure and synchronous: the HTTPS server, the offline ``review`` command and the
fixture runner all call it with a parsed request, the policy and the facts
gathered around the pod, and get back the AdmissionResponse plus a summary for
logs and metrics.

Order (SPEC §2-§3): what we never judge returns early (other resources and
operations, exempt namespaces, mirror pods, pods that are not task pods);
then the pod's shape; then the rules of the operation; then one response.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.admission import responses
from webhook.admission.patch import PatchOp, build_patch, escape
from webhook.admission.protocol import AdmissionRequest, AdmissionResponse
from webhook.admission.shape import check_pod_shape
from webhook.policy import Policy
from webhook.policy.airflow import task_identity
from webhook.policy.profiles import BASE, select_profile
from webhook.rules.base import REMOVE, Change, Facts, Violation, get_in
from webhook.rules.registry import (
    CREATE_RULES,
    EPHEMERAL_RULES,
    UPDATE_RULES,
    Rule,
    RuleError,
    evaluate,
)

Endpoint = Literal["mutate", "validate"]
Verdict = Literal["skipped", "allowed", "patched", "denied", "errored"]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True, slots=True)
class Decision:
    response: AdmissionResponse
    verdict: Verdict
    reason: str = ""  # why a review was skipped, or the error reference
    error: BaseException | None = None  # the bug behind an errored decision, for the log
    rules: tuple[str, ...] = ()  # ids of the rules that changed or flagged something
    violations: tuple[tuple[str, Violation], ...] = ()  # (rule id, violation)
    mutated_by: tuple[str, ...] = ()  # ids of the rules whose changes are in the patch
    patch: list[PatchOp] = field(default_factory=list)
    profile: str = BASE  # the policy profile that applied (SPEC §12); BASE: none did


def _skip(request: AdmissionRequest, reason: str) -> Decision:
    return Decision(responses.allowed(request.uid), "skipped", reason)


def describe_pod(pod: dict[str, Any], namespace: str) -> str:
    """``pod "ns/name"`` (or the generateName), with the Airflow task when known."""
    metadata = pod.get("metadata") or {}
    name = metadata.get("name") or ""
    if not name and metadata.get("generateName"):
        name = f"{metadata['generateName']}* (generateName)"
    text = f'pod "{namespace}/{name}"'
    identity = task_identity(metadata.get("annotations") or {}, metadata.get("labels") or {})
    if identity:
        text += " (" + ", ".join(f"{word} {value}" for word, value in identity) + ")"
    return text


GIST_MAX = 200


def denial_message(
    pod: dict[str, Any], namespace: str, violations: Iterable[Violation], profile: str = BASE
) -> str:
    """The gist on the first line, then every violation with its field path.

    The first line is what a reader takes in at a glance (in a task log the
    apiserver's JSON status escapes the rest into one long string)."""
    items = list(violations)
    gist = items[0].gist if items else "no violations"
    if len(gist) > GIST_MAX:
        gist = gist[: GIST_MAX - 3] + "..."
    more = f"; +{len(items) - 1} more" if len(items) > 1 else ""
    count = f"{len(items)} violation{'s' if len(items) != 1 else ''}"
    lines = "\n".join(f"- {v}" for v in items)
    named = "" if profile == BASE else f" (policy profile {profile})"
    return (
        f"task-pod-webhook denied {describe_pod(pod, namespace)}: {gist}{more}\n"
        f"{count} of the task pod policy{named}:\n{lines}"
    )


def is_task_pod(pod: dict[str, Any], request: AdmissionRequest, policy: Policy) -> bool:
    if policy.match == "namespace":
        users = policy.platform_user_pattern
        by_platform = bool(users.fullmatch(request.username)) or any(
            users.fullmatch(group) for group in request.groups
        )
        return not by_platform
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return any(selector.matches(labels) for selector in policy.selector)


def _not_enforced(
    rule: Rule, pod: dict[str, Any], change_path: tuple[Any, ...], value: Any
) -> Violation:
    dotted = ".".join(escape(p) if isinstance(p, str) else f"[{p}]" for p in change_path)
    dotted = dotted.replace(".[", "[")
    current = get_in(pod, *change_path)
    wanted = "absent" if value is REMOVE else json.dumps(value)
    return Violation(
        dotted,
        f"is {json.dumps(current)} but the policy ({rule.id}) requires {wanted}; "
        "changed after task-pod-webhook mutated the pod?",
    )


def _rules_for(request: AdmissionRequest) -> tuple[tuple[Rule, ...], str] | None:
    if request.resource != "pods" or request.kind not in ("Pod", ""):
        return None
    if request.operation == "CREATE" and request.sub_resource == "":
        return CREATE_RULES, "create"
    if request.operation == "UPDATE" and request.sub_resource == "":
        return UPDATE_RULES, "update"
    if request.operation == "UPDATE" and request.sub_resource == "ephemeralcontainers":
        return EPHEMERAL_RULES, "ephemeral"
    return None


def existing_ephemeral(old_pod: Any) -> frozenset[str]:
    containers = get_in(old_pod, "spec", "ephemeralContainers")
    if not isinstance(containers, list):
        return frozenset()
    return frozenset(
        c["name"] for c in containers if isinstance(c, dict) and isinstance(c.get("name"), str)
    )


def decide(
    request: AdmissionRequest, policy: Policy, facts: Facts, endpoint: Endpoint = "mutate"
) -> Decision:
    """The answer to one review. Never raises: a bug becomes an errored response."""
    try:
        return _decide(request, policy, facts, endpoint)
    except RuleError as exc:
        return errored_decision(request.uid, exc.rule_id, exc.__cause__ or exc)
    except Exception as exc:
        return errored_decision(request.uid, "admission", exc)


def errored_decision(uid: str, where: str, error: BaseException | None = None) -> Decision:
    reference = uuid.uuid4().hex[:12]
    message = (
        f"task-pod-webhook internal error in {where} (reference {reference}); "
        "the pod was not admitted, please report the reference"
    )
    return Decision(responses.errored(uid, message), "errored", f"{where}:{reference}", error=error)


def _decide(
    request: AdmissionRequest, policy: Policy, facts: Facts, endpoint: Endpoint
) -> Decision:
    selected = _rules_for(request)
    if selected is None:
        return _skip(request, "not a pod create/update")
    rules, scope = selected
    if request.namespace in policy.exempt:
        return _skip(request, "exempt namespace")
    pod = request.object
    shape = check_pod_shape(pod)
    if shape and any(v.where == "object" or v.where.startswith("metadata") for v in shape):
        # Without well-formed metadata the pod cannot even be selected (or named).
        return _deny(request, {}, [("shape", v) for v in shape], (), {})
    annotations = get_in(pod, "metadata", "annotations")
    if isinstance(annotations, dict) and MIRROR_ANNOTATION in annotations:
        return _skip(request, "mirror pod")
    old = request.old_object if isinstance(request.old_object, dict) else None
    if old is not None and check_pod_shape(old):
        old = None  # a malformed old object selects nothing
    if not (is_task_pod(pod, request, policy) or (old and is_task_pod(old, request, policy))):
        return _skip(request, "not a task pod")
    if shape:
        return _deny(request, pod, [("shape", v) for v in shape], (), {})
    profile = BASE
    audit = {"policy-hash": policy.content_hash, "profile": BASE}
    warnings: list[str] = []
    if policy.profiles:
        if facts.namespace_labels is not None:
            chosen = select_profile(policy, facts.namespace_labels)
            if chosen is not None:
                profile, policy = chosen.name, chosen.policy
                audit["profile"] = profile
        elif policy.service_accounts.on_lookup_error == "deny" and scope != "update":
            unknown = Violation(
                "metadata.namespace", _labels_unknown(request.namespace, scope, deny=True)
            )
            return _deny(request, pod, [("profile", unknown)], (), audit)
        else:
            warnings.append(_labels_unknown(request.namespace, scope))
    if scope == "ephemeral":
        facts = Facts(
            namespace=facts.namespace,
            namespace_labels=facts.namespace_labels,
            service_account=facts.service_account,
            existing_ephemeral=existing_ephemeral(old),
        )

    results = evaluate(rules, pod, policy, facts)
    changes: list[Change] = []
    change_rules: list[str] = []
    violations: list[tuple[str, Violation]] = []
    audit_notes: list[str] = []
    hit: list[str] = []
    for rule, action, (found_changes, found_notes, found_violations) in results:
        if not (found_changes or found_violations or found_notes):
            continue  # most rules find nothing: nothing to collect
        hit.append(rule.id)
        if action == "enforce":
            if endpoint == "mutate":
                if found_changes:
                    changes.extend(found_changes)
                    change_rules.append(rule.id)
                warnings.extend(found_notes)
            elif scope != "update":
                violations.extend(
                    (rule.id, _not_enforced(rule, pod, c.path, c.value))
                    for c in found_changes
                    if c.enforced
                )
            violations.extend((rule.id, v) for v in found_violations)
        elif action == "warn" and endpoint == "mutate":
            warnings.extend(f"[warn mode] would apply: {n}" for n in found_notes)
            warnings.extend(f"[warn mode] would deny: {v}" for v in found_violations)
        elif action == "audit":
            audit_notes.extend(found_notes)
            audit_notes.extend(str(v) for v in found_violations)

    if audit_notes:
        audit["audit-mode-findings"] = "; ".join(audit_notes)[:2000]
    if scope == "update":
        # Airflow patches live pods' labels and annotations to adopt them:
        # an update is never denied, only its labels are put right.
        violations = []
    if violations:
        # The override warnings are left out: nothing was applied.
        return _deny(request, pod, violations, hit, audit, profile=profile)
    patch = build_patch(pod, changes) if changes else []
    audit["mutations"] = str(len(patch))
    if patch:
        return Decision(
            responses.patched(request.uid, patch, warnings, audit),
            "patched",
            rules=tuple(hit),
            mutated_by=tuple(change_rules),  # each rule once, in order
            patch=patch,
            profile=profile,
        )
    return Decision(
        responses.allowed(request.uid, warnings, audit),
        "allowed",
        rules=tuple(hit),
        profile=profile,
    )


def _labels_unknown(namespace: str, scope: str, *, deny: bool = False) -> str:
    """Why the profile is unknown (SPEC §12): ``serviceAccounts.onLookupError`` answers."""
    what = (
        f"the labels of namespace {namespace!r} could not be read, so its policy profile is unknown"
    )
    if deny:
        return f"{what} (serviceAccounts.onLookupError: deny)"
    why = (
        "an update is never denied" if scope == "update" else "serviceAccounts.onLookupError: allow"
    )
    return f"{what}; the base policy applied ({why})"


def _deny(
    request: AdmissionRequest,
    pod: dict[str, Any],
    violations: list[tuple[str, Violation]],
    hit: Iterable[str],
    audit: dict[str, str],
    *,
    profile: str = BASE,
) -> Decision:
    message = denial_message(pod, request.namespace, (v for _, v in violations), profile)
    rules = tuple(dict.fromkeys([*hit, *(rule for rule, _ in violations)]))
    return Decision(
        responses.denied(request.uid, message, audit=audit or None),
        "denied",
        rules=rules,
        violations=tuple(violations),
        profile=profile,
    )

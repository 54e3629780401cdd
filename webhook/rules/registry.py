"""The rules, in order, and which of them run for which kind of request.

Order matters only for the order of warnings and violations in a response;
rules never see each other's changes (each reads the pod as received), and
their changes touch disjoint fields except ``metadata.annotations`` keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from webhook.policy import Action, Policy
from webhook.rules.base import Check, Facts, Outcome, Pod
from webhook.rules.labels import check_labels, check_labels_on_update
from webhook.rules.placement import check_placement
from webhook.rules.resources import check_resources
from webhook.rules.security_context import (
    check_ephemeral_host_access,
    check_ephemeral_security_context,
    check_host_access,
    check_security_context,
)
from webhook.rules.service_accounts import check_service_accounts
from webhook.rules.volumes import check_volumes

Family = Literal[
    "labels", "resources", "securityContext", "volumes", "serviceAccounts", "placement"
]
MODE_LABEL = "task-pod-webhook/mode"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    family: Family
    check: Check


LABELS = Rule("labels", "labels", check_labels)

# A new task pod: every rule.
CREATE_RULES: tuple[Rule, ...] = (
    LABELS,
    Rule("resources", "resources", check_resources),
    Rule("security-context", "securityContext", check_security_context),
    Rule("host-access", "securityContext", check_host_access),
    Rule("volumes", "volumes", check_volumes),
    Rule("service-accounts", "serviceAccounts", check_service_accounts),
    Rule("placement", "placement", check_placement),
)
# An update of a live pod: only labels are mutable, and the update must pass.
UPDATE_RULES: tuple[Rule, ...] = (Rule("labels", "labels", check_labels_on_update),)
# New ephemeral containers (kubectl debug): their security context.
EPHEMERAL_RULES: tuple[Rule, ...] = (
    Rule("ephemeral-security-context", "securityContext", check_ephemeral_security_context),
    Rule("ephemeral-host-access", "securityContext", check_ephemeral_host_access),
)
ALL_RULES: tuple[Rule, ...] = (*CREATE_RULES, *EPHEMERAL_RULES)


class RuleError(Exception):
    """A rule raised: a bug, never the pod's fault. Carries the rule id."""

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"rule {rule_id} failed")
        self.rule_id = rule_id


def action_for(rule: Rule, policy: Policy, namespace_labels: Mapping[str, str] | None) -> Action:
    """The family's action, or the namespace's rollout mode when it sets one (and the
    policy heeds it: ``namespaceModeLabel``)."""
    if namespace_labels is not None and policy.namespace_mode_label:
        mode = namespace_labels.get(MODE_LABEL)
        if mode == "warn":
            return "warn"
        if mode == "audit":
            return "audit"
    return policy.actions[rule.family]


def evaluate(
    rules: tuple[Rule, ...], pod: Pod, policy: Policy, facts: Facts
) -> list[tuple[Rule, Action, Outcome]]:
    results = []
    for rule in rules:
        try:
            outcome = rule.check(pod, policy, facts)
        except Exception as exc:
            raise RuleError(rule.id) from exc
        results.append((rule, action_for(rule, policy, facts.namespace_labels), outcome))
    return results

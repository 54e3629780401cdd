"""Profiles (SPEC §12): the merge, every error path of loading them, selection, and what
``decide`` makes of them (the profile in the response, unknown labels, the mode label)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.podkit import pod, request_of, review
from webhook.admission.decide import Decision, decide
from webhook.admission.facts import NoKubeFacts
from webhook.policy import Policy, PolicyError, dump_policy, load_policy_text
from webhook.policy.model import FAMILY_SECTIONS
from webhook.policy.profiles import BASE, find_profile, merge, select_profile
from webhook.rules.base import Facts, ServiceAccountFact

TWO = """
resources: {max: {cpu: "20"}}
profiles:
  - name: large
    namespaceSelector: {matchLabels: {size: large}}
    resources: {max: {cpu: "16"}, maxPerPod: {cpu: "16"}}
    serviceAccounts: {allowed: [large-worker]}
  - name: tagged
    namespaceSelector:
      matchExpressions:
        - {key: team, operator: NotIn, values: [ml]}
        - {key: tier, operator: Exists}
    labels: {set: {tenants.example/tier: tagged}}
  - name: catch-all
    namespaceSelector: {}
    volumes: {allowedTokenAudiences: [sts.amazonaws.com]}
"""


def _load(text: str) -> Policy:
    return load_policy_text(text)


def _errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    return caught.value.errors


# --- the merge -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "over", "merged"),
    [
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),  # maps recursively
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # lists replaced
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),  # a scalar replaces a map
        ({"a": 5}, {"a": {"x": None, "y": 1}}, {"a": {"y": 1}}),  # a map replaces a scalar
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": None}}, {"a": {"y": 2}}),  # null removes
        ({"a": {"x": 1}}, {"b": None}, {"a": {"x": 1}}),  # removing what is absent
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": 3}}}, {"a": {"b": {"c": 1, "d": 3}}}),
    ],
)
def test_merge_is_a_json_merge_patch(
    base: dict[str, Any], over: dict[str, Any], merged: dict[str, Any]
) -> None:
    before = yaml.safe_dump(base)
    assert merge(base, over) == merged
    assert yaml.safe_dump(base) == before  # the base is never changed


def test_family_sections_are_exactly_the_families_with_an_action() -> None:
    assert set(FAMILY_SECTIONS) == set(Policy().actions)


def test_each_profile_is_the_effective_base_with_its_sections_merged() -> None:
    policy = _load(TWO)
    large = find_profile(policy, "large")
    assert large is not None
    # The base file's max is {cpu: 20} (a map it gave replaces the default's whole).
    assert large.policy.resources.max == {"cpu": "16"}
    assert large.policy.service_accounts.allowed == ["large-worker"]  # lists replaced
    assert large.policy.exempt_namespaces == policy.exempt_namespaces  # globals carried
    tagged = find_profile(policy, "tagged")
    assert tagged is not None
    assert tagged.policy.labels.set == {
        "task-pod-webhook/enforced": "true",
        "tenants.example/tier": "tagged",
    }
    assert tagged.policy.resources.max["cpu"] == "20"  # untouched sections: the base's
    assert [p.name for p in policy.profiles] == ["large", "tagged", "catch-all"]
    assert all(p.policy.profiles == () for p in policy.profiles)


def test_profiles_round_trip_and_change_the_hash() -> None:
    policy = _load(TWO)
    assert load_policy_text(dump_policy(policy)) == policy
    assert policy.content_hash != _load("resources: {max: {cpu: '20'}}").content_hash
    renamed = _load(TWO.replace("name: tagged", "name: tagged-2"))
    assert renamed.content_hash != policy.content_hash


def test_maps_merge_over_the_effective_base_and_a_null_removes_an_entry() -> None:
    policy = _load(
        "profiles: [{name: p, namespaceSelector: {}, resources: {max: {cpu: '16'}}},"
        " {name: q, namespaceSelector: {}, resources: {max: {ephemeral-storage: null}}}]"
    )
    p, q = policy.profiles
    # memory and ephemeral-storage are the default's: the base file left max out
    assert p.policy.resources.max == {"cpu": "16", "memory": "86Gi", "ephemeral-storage": "100Gi"}
    assert q.policy.resources.max == {"cpu": "43", "memory": "86Gi"}


# --- every error, at once, with its path ----------------------------------------


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("5", "profiles[0]: expected a mapping, got int"),
        ("{namespaceSelector: {}}", "profiles[0].name: a profile needs a name (a string)"),
        ("{name: 7, namespaceSelector: {}}", "profiles[0].name: a profile needs a name"),
        ("{name: Large, namespaceSelector: {}}", "profiles[0].name: 'Large' is not a valid profile name"),
        ("{name: -a, namespaceSelector: {}}", "profiles[0].name: '-a' is not a valid profile name"),
        (f"{{name: {'a' * 64}, namespaceSelector: {{}}}}", "is not a valid profile name"),
        ("{name: base, namespaceSelector: {}}", "profiles[0].name: 'base' is reserved for the base policy"),
        ("{name: a}", "profiles[0].namespaceSelector: a profile needs a namespaceSelector"),
        ("{name: a, namespaceSelector: 3}", "profiles[0].namespaceSelector: Input should be a valid dictionary"),
        ("{name: a, namespaceSelector: {matchLabels: {'bad key!': x}}}", "profiles[0].namespaceSelector.matchLabels.bad key!"),
        ("{name: a, namespaceSelector: {matchExpressions: [{key: k, operator: In}]}}",
         "profiles[0].namespaceSelector.matchExpressions[0]: operator In needs a non-empty values list"),
        ("{name: a, namespaceSelector: {matchExpressions: [{key: k, operator: Exists, values: [x]}]}}",
         "profiles[0].namespaceSelector.matchExpressions[0]: operator Exists takes no values"),
        ("{name: a, namespaceSelector: {matchExpressions: [{key: k, operator: Gt, values: ['1']}]}}",
         "profiles[0].namespaceSelector.matchExpressions[0].operator"),
        ("{name: a, namespaceSelector: {matchFields: {}}}", "profiles[0].namespaceSelector.matchFields: unknown field"),
        ("{name: a, namespaceSelector: {}, bogus: 1}", "profiles[0].bogus: unknown field"),
        ("{name: a, namespaceSelector: {}, profiles: []}", "profiles[0].profiles: profiles do not nest"),
        ("{name: a, namespaceSelector: {}, resources: {max: {cpu: 2x}}}", "profiles[0].resources.max.cpu: '2x' is not a valid quantity"),
        ("{name: a, namespaceSelector: {}, resources: {min: {cpu: '50'}}}", "profiles[0].resources: min.cpu (50) is above max.cpu (43)"),
        ("{name: a, namespaceSelector: {}, resources: 5}", "profiles[0].resources: Input should be a valid dictionary"),
        ("{name: a, namespaceSelector: {}, volumes: {allowed: [hostPath]}}", "profiles[0].volumes: allowed: 'hostPath' is not allowed"),
        ("{name: a, namespaceSelector: {}, labels: {set: {dag_id: x}}}", "profiles[0].labels: set: 'dag_id' is Airflow's own label"),
        ("{name: a, namespaceSelector: {}, serviceAccounts: {onLookupError: maybe}}", "profiles[0].serviceAccounts.onLookupError"),
    ],
)  # fmt: skip
def test_a_bad_profile_entry_is_named_by_its_path(entry: str, error: str) -> None:
    errors = _errors(f"profiles: [{entry}]")
    assert any(e.startswith(error) or error in e for e in errors), errors


@pytest.mark.parametrize(
    "key", ["match", "selector", "exemptNamespaces", "platformUsers", "namespaceModeLabel"]
)
def test_global_keys_stay_global(key: str) -> None:
    errors = _errors(f"profiles: [{{name: a, namespaceSelector: {{}}, {key}: []}}]")
    assert errors == [
        f"profiles[0].{key}: a global key of the policy; a profile holds only rule family "
        f"sections ({', '.join(FAMILY_SECTIONS)})"
    ]


def test_duplicate_names_and_every_error_at_once() -> None:
    errors = _errors(
        """
resources: {max: {cpu: 9x}}
profiles:
  - {name: a, namespaceSelector: {}}
  - {name: a, namespaceSelector: {}, resources: {max: {cpu: 3y}}}
  - {name: b, namespaceSelector: {}, match: namespace}
"""
    )
    assert errors == [
        "resources.max.cpu: '9x' is not a valid quantity",
        "profiles[1].name: 'a' is already the name of profiles[0]",
        "profiles[1].resources.max.cpu: '3y' is not a valid quantity",
        "profiles[2].match: a global key of the policy; a profile holds only rule family "
        f"sections ({', '.join(FAMILY_SECTIONS)})",
    ]


def test_profiles_must_be_a_list() -> None:
    assert _errors("profiles: {name: a}") == ["profiles: expected a list, got dict"]


# --- selection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "chosen"),
    [
        ({"size": "large", "tier": "x"}, "large"),  # first match in file order wins
        ({"tier": "gold"}, "tagged"),  # NotIn of an absent key matches; Exists
        ({"tier": "gold", "team": "ml"}, "catch-all"),  # NotIn fails: the next one
        ({}, "catch-all"),  # an empty selector matches every namespace
    ],
)
def test_the_first_matching_profile_in_file_order(labels: dict[str, str], chosen: str) -> None:
    profile = select_profile(_load(TWO), labels)
    assert profile is not None and profile.name == chosen


def test_no_match_is_the_base_policy() -> None:
    policy = _load(
        "profiles: [{name: a, namespaceSelector: {matchExpressions: [{key: k, operator: DoesNotExist}]}}]"
    )
    assert select_profile(policy, {"k": ""}) is None
    assert select_profile(policy, {"j": "1"}) is not None


# --- what decide makes of them -------------------------------------------------

DECIDING = """
serviceAccounts: {onLookupError: %s}
profiles:
  - name: large
    namespaceSelector: {matchLabels: {size: large}}
    resources: {max: {cpu: "16"}}
    serviceAccounts: {allowed: [default]}
"""


def _decide(
    policy: Policy,
    labels: dict[str, str] | None,
    account: str = "airflow-worker",
    operation: str = "CREATE",
    **spec: Any,
) -> Decision:
    subject = pod(serviceAccountName=account, **spec)
    old = subject if operation == "UPDATE" else None
    body = review(subject, operation, old=old, namespace="tenant")
    return decide(request_of(body), policy, Facts("tenant", labels))


def test_the_profile_shows_in_the_decision_annotations_and_denial() -> None:
    policy = _load(DECIDING % "deny")
    denied = _decide(policy, {"size": "large"})
    assert denied.verdict == "denied" and denied.profile == "large"
    assert "of the task pod policy (policy profile large):" in denied.response["status"]["message"]
    assert denied.response["auditAnnotations"]["profile"] == "large"
    allowed = _decide(policy, {"size": "small"})
    assert allowed.verdict == "patched" and allowed.profile == BASE
    assert allowed.response["auditAnnotations"]["profile"] == BASE
    base_denied = _decide(policy, {}, account="intruder")
    assert "of the task pod policy:" in base_denied.response["status"]["message"]
    assert "policy profile" not in base_denied.response["status"]["message"]


LOOKUP_IN_A_PROFILE = """
profiles:
  - name: audited
    namespaceSelector: {matchLabels: {size: large}}
    serviceAccounts: {lookup: true}
"""


def test_a_profile_that_looks_accounts_up_gets_the_fact_though_the_base_does_not() -> None:
    # The facts are gathered before the profile is chosen: they must serve every profile.
    policy = _load(LOOKUP_IN_A_PROFILE)
    assert not policy.service_accounts.lookup
    assert policy.looks_up_service_accounts
    assert not _load("{}").looks_up_service_accounts
    fact = NoKubeFacts().facts("tenant", policy).service_account
    assert fact is not None and fact.status == "error"
    subject = pod(serviceAccountName="airflow-worker")
    body = review(subject, "CREATE", namespace="tenant")
    missing = Facts("tenant", {"size": "large"}, ServiceAccountFact("missing"))
    denied = decide(request_of(body), policy, missing)
    assert denied.verdict == "denied" and denied.profile == "audited"
    assert 'service account "airflow-worker" does not exist' in denied.response["status"]["message"]


def test_unknown_namespace_labels_follow_on_lookup_error() -> None:
    denied = _decide(_load(DECIDING % "deny"), None)
    assert denied.verdict == "denied" and denied.profile == BASE
    message = denied.response["status"]["message"]
    assert "metadata.namespace: the labels of namespace 'tenant' could not be read" in message
    assert "(serviceAccounts.onLookupError: deny)" in message
    assert denied.violations[0][0] == "profile"
    # allow: the base policy applies (airflow-worker is allowed there, not in large)
    allowed = _decide(_load(DECIDING % "allow"), None)
    assert allowed.response["allowed"] is True and allowed.profile == BASE
    assert any("the base policy applied" in w for w in allowed.response["warnings"])


def test_an_update_is_never_denied_for_unknown_labels() -> None:
    decision = _decide(_load(DECIDING % "deny"), None, operation="UPDATE")
    assert decision.response["allowed"] is True
    assert any("an update is never denied" in w for w in decision.response.get("warnings", []))


def test_unknown_labels_without_profiles_change_nothing() -> None:
    decision = _decide(_load("serviceAccounts: {onLookupError: deny}"), None)
    assert decision.verdict == "patched"


@pytest.mark.parametrize(("heeded", "allowed"), [(True, True), (False, False)])
def test_namespace_mode_label_can_be_ignored(heeded: bool, allowed: bool) -> None:
    policy = _load(f"namespaceModeLabel: {str(heeded).lower()}")
    decision = _decide(policy, {"task-pod-webhook/mode": "warn"}, hostNetwork=True)
    assert decision.response["allowed"] is allowed


def test_selection_is_memoized_by_label_content_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = _load(TWO)
    labels = {"size": "large"}
    first = select_profile(policy, labels)
    assert first is not None and first.name == "large"
    labels["size"] = "small"  # the same mapping with other content: selected afresh
    again = select_profile(policy, labels)
    assert again is not None and again.name == "catch-all"
    monkeypatch.setattr("webhook.policy.profiles.SELECTIONS_KEPT", 3)
    for index in range(10):
        select_profile(policy, {"n": str(index)})
        assert len(policy.profile_selections) <= 3
    assert _load(TWO).profile_selections == {}  # one memo per load


def test_a_family_added_to_the_model_merges_without_a_list_to_extend() -> None:
    # placement (SPEC §16) came after profiles: FAMILY_SECTIONS is derived from Policy
    assert "placement" in FAMILY_SECTIONS
    policy = _load(
        """
placement: {nodeSelector: {pool: tasks}, priorityClassName: batch}
profiles:
  - name: gpu
    namespaceSelector: {matchLabels: {gpu: "yes"}}
    placement: {nodeSelector: {accelerator: a100}}
"""
    )
    (gpu,) = policy.profiles
    assert gpu.policy.placement.node_selector == {"pool": "tasks", "accelerator": "a100"}
    assert gpu.policy.placement.priority_class_name == "batch"
    assert _errors("profiles: [{name: a, namespaceSelector: {}, placement: {bogus: 1}}]") == [
        "profiles[0].placement.bogus: unknown field"
    ]

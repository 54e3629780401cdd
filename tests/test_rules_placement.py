"""placement (SPEC §16): node selector, tolerations, classes, token; nodeName and affinity."""

from __future__ import annotations

import jsonpatch
import pytest

from tests.podkit import container, pod, policy, run
from webhook.policy import PolicyError, default_policy
from webhook.rules.base import REMOVE, Change, Facts
from webhook.rules.placement import REQUIRED_TERMS, check_placement

TAINTED = {"key": "dedicated", "operator": "Equal", "value": "tasks", "effect": "NoSchedule"}
PLATFORM = policy(
    placement={
        "nodeSelector": {"pool.example.com/role": "tasks", "sandbox": "gvisor"},
        "tolerations": [TAINTED],
        "priorityClassName": "airflow-tasks",
        "runtimeClassName": "gvisor",
        "automountServiceAccountToken": False,
    }
)
APISERVER_DEFAULT = {
    "key": "node.kubernetes.io/not-ready",
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}


def _check(subject, pol=PLATFORM):
    return check_placement(subject, pol, Facts())


def test_the_default_policy_changes_nothing():
    subject = pod(
        nodeSelector={"pool": "gpu"},
        tolerations=[{"operator": "Exists"}, TAINTED],
        priorityClassName="high",
        runtimeClassName="runc",
        automountServiceAccountToken=True,
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]}
                    ]
                }
            }
        },
    )
    assert _check(subject, default_policy()) == _check(pod(), default_policy())
    assert _check(subject, default_policy()).changes == ()


NODE_SELECTOR_CASES = [
    # (pod's nodeSelector, expected changes, expected notes)
    (
        None,
        [
            Change(("spec", "nodeSelector", "pool.example.com/role"), "tasks"),
            Change(("spec", "nodeSelector", "sandbox"), "gvisor"),
        ],
        [],
    ),
    ({"pool.example.com/role": "tasks", "sandbox": "gvisor", "zone": "a"}, [], []),
    (
        {"pool.example.com/role": "gpu", "zone": "a"},
        [
            Change(("spec", "nodeSelector", "pool.example.com/role"), "tasks"),
            Change(("spec", "nodeSelector", "sandbox"), "gvisor"),
        ],
        ["nodeSelector pool.example.com/role=gpu overridden to tasks"],
    ),
]


@pytest.mark.parametrize(("selector", "changes", "notes"), NODE_SELECTOR_CASES)
def test_node_selector(selector, changes, notes):
    pol = policy(
        placement={"nodeSelector": {"pool.example.com/role": "tasks", "sandbox": "gvisor"}}
    )
    outcome = _check(pod() if selector is None else pod(nodeSelector=selector), pol)
    assert list(outcome.changes) == changes
    assert list(outcome.notes) == notes


def test_node_selector_keys_are_escaped_in_the_patch_and_others_kept():
    subject = pod(nodeSelector={"zone": "a", "pool.example.com/role": "gpu"})
    decision = run(subject, PLATFORM)
    ops = {op["path"]: op for op in decision.patch}
    assert ops["/spec/nodeSelector/pool.example.com~1role"]["op"] == "replace"
    mutated = jsonpatch.apply_patch(subject, decision.patch)
    assert mutated["spec"]["nodeSelector"] == {
        "zone": "a",
        "pool.example.com/role": "tasks",
        "sandbox": "gvisor",
    }


TOLERATION_CASES = [
    # (pod's tolerations, expected change)
    (None, Change(("spec", "tolerations"), [TAINTED])),
    ([], Change(("spec", "tolerations"), [TAINTED])),
    ([APISERVER_DEFAULT], Change(("spec", "tolerations", 1), TAINTED)),
    # Present already, spelled differently: no change.
    ([{"key": "dedicated", "value": "tasks", "effect": "NoSchedule"}], None),
    ([APISERVER_DEFAULT, TAINTED], None),
    # Same key, another effect or value: not the same toleration.
    (
        [{**TAINTED, "effect": "NoExecute"}],
        Change(("spec", "tolerations", 1), TAINTED),
    ),
    ([{**TAINTED, "value": "other"}], Change(("spec", "tolerations", 1), TAINTED)),
]


@pytest.mark.parametrize(("present", "change"), TOLERATION_CASES)
def test_tolerations_are_added_when_missing(present, change):
    pol = policy(placement={"tolerations": [TAINTED]})
    outcome = _check(pod() if present is None else pod(tolerations=present), pol)
    assert list(outcome.changes) == ([change] if change else [])
    assert outcome.notes == ()


def test_toleration_seconds_make_a_different_toleration():
    timed = {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
    pol = policy(placement={"tolerations": [timed]})
    untimed = {"key": "spot", "operator": "Exists", "effect": "NoExecute"}
    assert _check(pod(tolerations=[untimed]), pol).changes == (
        Change(("spec", "tolerations", 1), timed),
    )
    assert _check(pod(tolerations=[timed]), pol).changes == ()


ALLOWED_KEY_CASES = [
    # (allowedTolerationKeys, pod toleration, violation fragment or None)
    ([], {"operator": "Exists"}, None),  # an empty list restricts nothing
    ([], {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}, None),
    (["gpu"], {"key": "gpu", "operator": "Exists"}, None),
    (["gpu"], {"key": "dedicated", "operator": "Equal", "value": "tasks"}, None),  # policy's own
    (["gpu"], APISERVER_DEFAULT, None),
    (
        ["gpu"],
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
        'key "node.kubernetes.io/not-ready" is not allowed',
    ),
    (
        ["gpu"],
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        'key "node-role.kubernetes.io/control-plane" is not allowed',
    ),
    (["gpu"], {"operator": "Exists"}, "an empty key with operator Exists tolerates every taint"),
    (["gpu", ""], {"operator": "Exists"}, None),
]


@pytest.mark.parametrize(("allowed", "toleration", "fragment"), ALLOWED_KEY_CASES)
def test_allowed_toleration_keys(allowed, toleration, fragment):
    pol = policy(placement={"tolerations": [TAINTED], "allowedTolerationKeys": allowed})
    outcome = _check(pod(tolerations=[TAINTED, toleration]), pol)
    if fragment is None:
        assert outcome.violations == ()
    else:
        (violation,) = outcome.violations
        assert violation.where == "spec.tolerations[1]"
        assert fragment in violation.what
        assert '"dedicated"' in violation.what and '"gpu"' in violation.what


CLASS_CASES = [
    # (field, pod's value, extra pod fields, expected changes, notes)
    ("priorityClassName", None, {}, [Change(("spec", "priorityClassName"), "airflow-tasks")], []),
    ("priorityClassName", "airflow-tasks", {"priority": 1000}, [], []),
    (
        "priorityClassName",
        "high",
        {"priority": 1000000, "preemptionPolicy": "PreemptLowerPriority"},
        [
            Change(("spec", "priorityClassName"), "airflow-tasks"),
            Change(("spec", "priority"), REMOVE, enforced=False),
            Change(("spec", "preemptionPolicy"), REMOVE, enforced=False),
        ],
        ["priorityClassName high overridden to airflow-tasks"],
    ),
    ("runtimeClassName", "", {}, [Change(("spec", "runtimeClassName"), "gvisor")], []),
    (
        "runtimeClassName",
        "kata",
        {"overhead": {"cpu": "250m"}},
        [
            Change(("spec", "runtimeClassName"), "gvisor"),
            Change(("spec", "overhead"), REMOVE, enforced=False),
        ],
        ["runtimeClassName kata overridden to gvisor"],
    ),
]


@pytest.mark.parametrize(("field", "value", "extra", "changes", "notes"), CLASS_CASES)
def test_priority_and_runtime_class(field, value, extra, changes, notes):
    pol = policy(placement={"priorityClassName": "airflow-tasks", "runtimeClassName": "gvisor"})
    spec = dict(extra)
    if value is not None:
        spec[field] = value
    other = "runtimeClassName" if field == "priorityClassName" else "priorityClassName"
    spec[other] = {"runtimeClassName": "gvisor", "priorityClassName": "airflow-tasks"}[other]
    outcome = _check(pod(**spec), pol)
    assert list(outcome.changes) == changes
    assert list(outcome.notes) == notes


TOKEN_VOLUME = {
    "name": "kube-api-access-x7k2p",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
        ]
    },
}
TOKEN_MOUNT = {
    "name": "kube-api-access-x7k2p",
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    "readOnly": True,
}


@pytest.mark.parametrize(
    ("setting", "pod_value", "expected", "notes"),
    [
        (None, None, None, []),
        (None, True, None, []),
        (True, False, None, []),  # true: the pod's own setting stands
        (False, None, False, []),
        (False, False, None, []),
        (False, True, False, ["automountServiceAccountToken true overridden to false"]),
    ],
)
def test_automount_service_account_token(setting, pod_value, expected, notes):
    pol = policy(placement={"automountServiceAccountToken": setting})
    subject = pod() if pod_value is None else pod(automountServiceAccountToken=pod_value)
    outcome = _check(subject, pol)
    want = [] if expected is None else [Change(("spec", "automountServiceAccountToken"), expected)]
    assert list(outcome.changes) == want
    assert list(outcome.notes) == notes


def test_the_mounted_token_is_removed_with_its_mounts():
    user_token = {
        "name": "vault",
        "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]},
    }
    subject = pod(
        container("base", volumeMounts=[{"name": "dags", "mountPath": "/d"}, TOKEN_MOUNT]),
        container("sidecar", volumeMounts=[TOKEN_MOUNT]),
        volumes=[{"name": "dags", "emptyDir": {}}, TOKEN_VOLUME, user_token],
    )
    pol = policy(placement={"automountServiceAccountToken": False})
    decision = run(subject, pol)
    mutated = jsonpatch.apply_patch(subject, decision.patch)
    assert mutated["spec"]["automountServiceAccountToken"] is False
    assert [v["name"] for v in mutated["spec"]["volumes"]] == ["dags", "vault"]
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [{"name": "dags", "mountPath": "/d"}]
    assert mutated["spec"]["containers"][1]["volumeMounts"] == []
    assert run(mutated, pol).patch == []


def test_node_name_is_a_violation():
    (violation,) = _check(pod(nodeName="ip-10-0-0-1"), default_policy()).violations
    assert violation.where == "spec.nodeName"
    assert '"ip-10-0-0-1"' in violation.what and "scheduler" in violation.what


def _required(*terms):
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def _term(*expressions, fields=None):
    term = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return term


def _req(key, operator, *values):
    expression = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return expression


AFFINITY_POLICY = policy(placement={"nodeSelector": {"pool": "tasks", "cores": "8"}})
AFFINITY_CASES = [
    # (terms, violated expression paths, fragment)
    ([_term(_req("pool", "In", "tasks", "gpu"))], [], None),
    ([_term(_req("pool", "In", "gpu"))], ["[0].matchExpressions[0]"], 'pool In ["gpu"]'),
    ([_term(_req("pool", "NotIn", "tasks"))], ["[0].matchExpressions[0]"], "pool NotIn"),
    ([_term(_req("pool", "NotIn", "gpu"))], [], None),
    ([_term(_req("pool", "Exists"))], [], None),
    ([_term(_req("pool", "DoesNotExist"))], ["[0].matchExpressions[0]"], "does not exist"),
    ([_term(_req("cores", "Gt", "4"))], [], None),
    ([_term(_req("cores", "Gt", "16"))], ["[0].matchExpressions[0]"], "cores Gt 16"),
    ([_term(_req("cores", "Lt", "4"))], ["[0].matchExpressions[0]"], "cores Lt 4"),
    ([_term(_req("zone", "In", "a"))], [], None),  # a key the policy does not set
    # The second expression of a term conflicts: the term does.
    (
        [_term(_req("zone", "In", "a"), _req("pool", "In", "gpu"))],
        ["[0].matchExpressions[1]"],
        "pool",
    ),
    # Terms are OR-ed: one that can match keeps the pod schedulable.
    ([_term(_req("pool", "In", "gpu")), _term(_req("pool", "In", "tasks"))], [], None),
    (
        [_term(_req("pool", "In", "gpu")), _term(_req("pool", "DoesNotExist"))],
        ["[0].matchExpressions[0]", "[1].matchExpressions[0]"],
        "all 2 terms conflict",
    ),
    # matchFields pick nodes by name, through the scheduler: no label conflict.
    (
        [_term(fields=[{"key": "metadata.name", "operator": "In", "values": ["node-1"]}])],
        [],
        None,
    ),
]


@pytest.mark.parametrize(("terms", "paths", "fragment"), AFFINITY_CASES)
def test_required_node_affinity_against_the_node_selector(terms, paths, fragment):
    outcome = _check(pod(affinity=_required(*terms)), AFFINITY_POLICY)
    assert [v.where for v in outcome.violations] == [REQUIRED_TERMS + p for p in paths]
    if fragment:
        assert all("no node could ever take the pod" in v.what for v in outcome.violations)
        assert any(fragment in v.what for v in outcome.violations)


def test_preferred_affinity_is_never_judged():
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": _term(_req("pool", "In", "gpu"))}
            ]
        }
    }
    assert _check(pod(affinity=preferred), AFFINITY_POLICY).violations == ()


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"nodeSelector": {"bad key": "v"}}, "placement.nodeSelector"),
        ({"tolerations": [{"operator": "Equal"}]}, "an empty key needs operator Exists"),
        (
            {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]},
            "value must be empty",
        ),
        ({"tolerations": [{"key": "a", "tolerationSeconds": 5}]}, "needs effect NoExecute"),
        ({"tolerations": [{"key": "a", "effect": "Sometimes"}]}, "placement.tolerations[0].effect"),
        ({"tolerations": [TAINTED, TAINTED]}, "tolerations[1]: a duplicate"),
        ({"allowedTolerationKeys": ["not a key"]}, "allowedTolerationKeys"),
        ({"priorityClassName": "High_Priority"}, "priorityClassName"),
        ({"priorityClassName": "system-cluster-critical"}, "system priority class"),
        ({"runtimeClassName": "gVisor"}, "runtimeClassName"),
        ({"automountServiceAccountToken": "no"}, "automountServiceAccountToken"),
        ({"nodeName": "x"}, "placement.nodeName: unknown field"),
    ],
)
def test_bad_placement_policies_name_the_field(section, fragment):
    with pytest.raises(PolicyError) as raised:
        policy(placement=section)
    assert fragment in str(raised.value)


def test_a_platform_pod_converges_and_warn_mode_changes_nothing():
    subject = pod(
        nodeSelector={"pool.example.com/role": "gpu"},
        priorityClassName="high",
        runtimeClassName="runc",
        automountServiceAccountToken=True,
    )
    decision = run(subject, PLATFORM)
    warnings = decision.response["warnings"]
    for fragment in (
        "nodeSelector",
        "priorityClassName high",
        "runtimeClassName runc",
        "automount",
    ):
        assert any(fragment in w for w in warnings), fragment
    mutated = jsonpatch.apply_patch(subject, decision.patch)
    assert mutated["spec"]["tolerations"] == [TAINTED]
    assert run(mutated, PLATFORM).patch == []
    assert run(mutated, PLATFORM, endpoint="validate").response["allowed"] is True
    warn = policy(placement={**PLATFORM.placement.model_dump(by_alias=True), "action": "warn"})
    warned = run(subject, warn)
    assert not any(op["path"].startswith("/spec/nodeSelector") for op in warned.patch)
    assert any("[warn mode] would apply: nodeSelector" in w for w in warned.response["warnings"])


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"nodeName": 7}, "spec.nodeName: expected a string, got integer"),
        ({"nodeSelector": ["a"]}, "spec.nodeSelector: expected an object, got list"),
        ({"nodeSelector": {"pool": 1}}, "spec.nodeSelector.pool: expected a string, got integer"),
        ({"tolerations": {"key": "a"}}, "spec.tolerations: expected a list, got object"),
        (
            {"tolerations": [{"key": "a", "tolerationSeconds": "60"}]},
            "spec.tolerations[0].tolerationSeconds: expected an integer, got string",
        ),
        (
            {"affinity": _required({"matchExpressions": {"key": "a"}})},
            f"{REQUIRED_TERMS}[0].matchExpressions: expected a list, got object",
        ),
        (
            {"affinity": _required(_term({"key": "a", "operator": "In", "values": "x"}))},
            f"{REQUIRED_TERMS}[0].matchExpressions[0].values: expected a list, got string",
        ),
        ({"priorityClassName": True}, "spec.priorityClassName: expected a string, got boolean"),
        ({"runtimeClassName": ["gvisor"]}, "spec.runtimeClassName: expected a string, got list"),
        (
            {"automountServiceAccountToken": "false"},
            "spec.automountServiceAccountToken: expected a boolean, got string",
        ),
        (
            {"containers": [container(volumeMounts=[{"name": 1}])]},
            "spec.containers[0].volumeMounts[0].name: expected a string, got integer",
        ),
    ],
)
def test_bad_shapes_are_denied_naming_the_field(spec, fragment):
    subject = pod(**spec)
    for pol in (default_policy(), PLATFORM):
        response = run(subject, pol).response
        assert response["allowed"] is False
        assert fragment in response["status"]["message"]

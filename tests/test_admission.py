"""decide(): operations, selection, the response rules of SPEC §2, modes, /validate."""

from __future__ import annotations

import json

import pytest

from tests.podkit import container, decoded_patch, pod, policy, request_of, review, run
from webhook.admission.decide import decide
from webhook.admission.protocol import ProtocolError, parse_review
from webhook.admission.responses import fit_warnings
from webhook.policy import default_policy
from webhook.rules.base import Facts

TASK = {"kubernetes_executor": "True"}


def test_patched_response_shape():
    decision = run(pod(container(securityContext={"privileged": True})))
    response = decision.response
    assert response["uid"] == "0f1e2d3c-0000-4000-8000-000000000001"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert decoded_patch(response) == decision.patch
    assert response["auditAnnotations"]["mutations"] == str(len(decision.patch))
    assert response["auditAnnotations"]["policy-hash"] == default_policy().content_hash
    assert (
        "container base: securityContext.privileged true overridden to false"
        in response["warnings"]
    )


def test_no_patch_field_when_nothing_changes():
    first = run(pod())
    import jsonpatch

    mutated = jsonpatch.apply_patch(pod(), first.patch)
    again = run(mutated).response
    assert again["allowed"] is True
    assert "patch" not in again and "patchType" not in again


def test_denial_names_pod_task_and_every_violation():
    subject = pod(
        annotations={
            "dag_id": "Sales Report",
            "task_id": "load",
            "run_id": "manual__2026-11-25T12:00:00+00:00",
            "try_number": "2",
        },
        volumes=[
            {"name": "dags", "persistentVolumeClaim": {"claimName": "dags"}},
            {"name": "sock", "hostPath": {"path": "/var/run"}},
        ],
        serviceAccountName="admin",
        hostNetwork=True,
    )
    response = run(subject).response
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    message = status["message"]
    first, second, *rest = message.split("\n")
    # The gist: the first violation, short (no field path, no detail), and the count.
    assert first == (
        'task-pod-webhook denied pod "airflow/task-pod" (dag Sales Report, task load, '
        "run manual__2026-11-25T12:00:00+00:00, try 2): "
        "spec.hostNetwork: host networking is not allowed for task pods; +3 more"
    )
    assert second == "4 violations of the task pod policy:"
    assert len(rest) == 4 and all(line.startswith("- ") for line in rest)
    for part in [
        "spec.volumes[0] (name=dags): persistentVolumeClaim volumes",
        "spec.volumes[1] (name=sock): hostPath volumes",
        'spec.serviceAccountName: service account "admin"',
        "spec.hostNetwork: host networking",
    ]:
        assert part in message
    assert "patch" not in response


def test_generate_name_pods_are_named_by_it():
    subject = pod(serviceAccountName="admin")
    del subject["metadata"]["name"]
    subject["metadata"]["generateName"] = "sales-load-"
    assert 'pod "airflow/sales-load-* (generateName)"' in run(subject).response["status"]["message"]


@pytest.mark.parametrize(
    ("operation", "resource", "sub_resource", "kind"),
    [
        ("DELETE", "pods", None, "Pod"),
        ("CONNECT", "pods", "exec", "PodExecOptions"),
        ("CREATE", "configmaps", None, "ConfigMap"),
        ("UPDATE", "pods", "status", "Pod"),
        ("CREATE", "pods", "binding", "Binding"),
    ],
)
def test_other_operations_are_allowed_untouched(operation, resource, sub_resource, kind):
    bad = pod(hostNetwork=True, serviceAccountName="admin")
    decision = run(
        bad, operation=operation, resource=resource, sub_resource=sub_resource, kind=kind
    )
    assert decision.response == {"uid": decision.response["uid"], "allowed": True}
    assert decision.verdict == "skipped"


@pytest.mark.parametrize(
    ("subject", "kwargs", "reason"),
    [
        (pod(hostNetwork=True), {"namespace": "kube-system"}, "exempt namespace"),
        (
            pod(hostNetwork=True, annotations={"kubernetes.io/config.mirror": "abc"}),
            {},
            "mirror pod",
        ),
        (pod(hostNetwork=True, labels={"app": "scheduler"}), {}, "not a task pod"),
    ],
)
def test_untouched_pods(subject, kwargs, reason):
    decision = run(subject, **kwargs)
    assert decision.verdict == "skipped" and decision.reason == reason
    assert decision.response["allowed"] is True and "patch" not in decision.response


def test_pod_labels_cannot_opt_out():
    subject = pod(
        labels={"kubernetes_pod_operator": "True", "task-pod-webhook/exempt": "true"},
        annotations={"task-pod-webhook/exempt": "true"},
        hostNetwork=True,
    )
    assert run(subject).response["allowed"] is False


def test_match_namespace_selects_every_pod_but_the_platforms():
    pol = policy(
        match="namespace",
        platformUsers=[
            "system:serviceaccount:airflow:scheduler-controller",
            "system:serviceaccounts:kube-*",
        ],
    )
    unlabelled = pod(labels={}, hostNetwork=True)
    assert run(unlabelled, pol).response["allowed"] is False
    by_platform = run(
        unlabelled, pol, username="system:serviceaccount:airflow:scheduler-controller"
    )
    assert by_platform.verdict == "skipped"
    by_group = run(unlabelled, pol, username="x", groups=["system:serviceaccounts:kube-system"])
    assert by_group.verdict == "skipped"


def test_update_restores_labels_and_is_never_denied():
    old = pod(
        labels={"kubernetes_executor": "True", "task-pod-webhook/enforced": "true"},
        hostNetwork=True,
    )
    new = pod(
        labels={
            "kubernetes_executor": "True",
            "task-pod-webhook/tier": "gold",
            "already_checked": "True",
        },
        hostNetwork=True,
    )
    decision = run(new, operation="UPDATE", old=old)
    assert decision.response["allowed"] is True
    assert decision.patch == [
        {"op": "add", "path": "/metadata/labels/task-pod-webhook~1enforced", "value": "true"},
        {"op": "remove", "path": "/metadata/labels/task-pod-webhook~1tier"},
    ]
    assert run(new, operation="UPDATE", old=old, endpoint="validate").response["allowed"] is True


def test_update_that_drops_the_selector_label_is_still_a_task_pod():
    old = pod(labels={"kubernetes_executor": "True"})
    new = pod(labels={})
    assert run(new, operation="UPDATE", old=old).patch


def test_ephemeral_containers_update():
    old = pod(ephemeralContainers=[container("dbg-1", securityContext={"privileged": True})])
    new = pod(
        ephemeralContainers=[
            container("dbg-1", securityContext={"privileged": True}),
            container("dbg-2", securityContext={"privileged": True}),
        ]
    )
    decision = run(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    paths = {op["path"] for op in decision.patch}
    assert "/spec/ephemeralContainers/1/securityContext/privileged" in paths
    assert not any(
        p.startswith(
            (
                "/spec/ephemeralContainers/0",
                "/spec/containers",
                "/metadata",
                "/spec/securityContext",
            )
        )
        for p in paths
    )
    validated = run(
        new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers", endpoint="validate"
    )
    assert validated.response["allowed"] is False


def test_v1beta1_is_answered_in_v1beta1():
    body = review(pod(), api_version="admission.k8s.io/v1beta1")
    request = request_of(body)
    assert request.api_version == "admission.k8s.io/v1beta1"


def test_dry_run_gets_the_same_answer():
    wet, dry = run(pod()), run(pod(), dry_run=True)
    assert wet.response == dry.response


def test_validate_denies_what_a_later_webhook_changed():
    import jsonpatch

    mutated = jsonpatch.apply_patch(pod(), run(pod()).patch)
    assert run(mutated, endpoint="validate").response["allowed"] is True
    mutated["spec"]["containers"][0]["securityContext"]["privileged"] = True
    mutated["spec"]["volumes"] = [{"name": "late", "persistentVolumeClaim": {"claimName": "x"}}]
    response = run(mutated, endpoint="validate").response
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert (
        "spec.containers[0].securityContext.privileged: is true but the policy (security-context) requires false"
        in message
    )
    assert "spec.volumes[0] (name=late): persistentVolumeClaim volumes" in message


@pytest.mark.parametrize("mode", ["warn", "audit"])
def test_namespace_mode_label(mode):
    subject = pod(container(securityContext={"privileged": True}), hostNetwork=True)
    facts = Facts(namespace="airflow", namespace_labels={"task-pod-webhook/mode": mode})
    response = run(subject, facts=facts).response
    assert response["allowed"] is True and "patch" not in response
    if mode == "warn":
        assert (
            "[warn mode] would deny: spec.hostNetwork: host networking is not allowed for task pods"
            in response["warnings"]
        )
        assert any(
            "would apply: container base: securityContext.privileged" in w
            for w in response["warnings"]
        )
    else:
        assert "warnings" not in response
        assert "spec.hostNetwork" in response["auditAnnotations"]["audit-mode-findings"]


def test_family_action_from_policy():
    pol = policy(volumes={"action": "warn"})
    subject = pod(volumes=[{"name": "d", "hostPath": {"path": "/"}}])
    response = run(subject, pol).response
    assert response["allowed"] is True
    assert any("would deny: spec.volumes[0] (name=d)" in w for w in response["warnings"])


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ("a string", "object: expected a Pod object, got string"),
        (
            {"metadata": {"labels": TASK}, "spec": {"containers": "oops"}},
            "spec.containers: expected a list, got string",
        ),
        (
            {"metadata": {"labels": ["kubernetes_executor"]}, "spec": {}},
            "metadata.labels: expected an object, got list",
        ),
        ({"metadata": "task-pod", "spec": {}}, "metadata: expected an object, got string"),
        (
            {"metadata": {"labels": TASK}, "spec": {"containers": [None], "volumes": [None]}},
            "spec.containers[0]: expected an item, got null",
        ),
        (
            {
                "metadata": {"labels": TASK},
                "spec": {"containers": [{"name": "c", "ports": [{"hostPort": "80"}]}]},
            },
            "spec.containers[0].ports[0].hostPort: expected an integer, got string",
        ),
        (
            {
                "metadata": {"labels": TASK},
                "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": [1]}}}]},
            },
            "spec.containers[0].resources.limits.cpu: expected a quantity string, got list",
        ),
    ],
)
def test_bad_shapes_are_denied_naming_the_field(obj, fragment):
    response = run(obj).response
    assert response["allowed"] is False
    assert fragment in response["status"]["message"]


def test_rule_bug_is_an_errored_response(monkeypatch):
    from webhook.rules import registry

    def broken(pod, policy, facts):
        raise KeyError("boom")

    rules = tuple(
        r if r.id != "volumes" else registry.Rule("volumes", "volumes", broken)
        for r in registry.CREATE_RULES
    )
    monkeypatch.setattr("webhook.admission.decide.CREATE_RULES", rules)
    decision = run(pod())
    assert decision.verdict == "errored" and decision.reason.startswith("volumes:")
    assert decision.response["allowed"] is False
    assert decision.response["status"]["code"] == 500
    assert decision.response["uid"] == "0f1e2d3c-0000-4000-8000-000000000001"
    assert "boom" not in decision.response["status"]["message"]


def test_warnings_stay_within_the_apiservers_limits():
    many = [
        f"container c{i}: securityContext.privileged true overridden to false" for i in range(200)
    ]
    fitted = fit_warnings(many)
    assert sum(len(w) for w in fitted) <= 4096
    assert fitted[-1].startswith("... and ") and fitted[-1].endswith(" more")
    shown = len(fitted) - 1
    assert fitted[-1] == f"... and {200 - shown} more"
    assert fit_warnings(["x" * 1000])[0] == "x" * 253 + "..."


def test_many_containers_warnings_are_summarized_end_to_end():
    subject = pod(
        *[
            container(f"c{i}", securityContext={"privileged": True, "runAsUser": 0})
            for i in range(60)
        ]
    )
    warnings = run(subject).response["warnings"]
    assert sum(map(len, warnings)) <= 4096 and warnings[-1].startswith("... and ")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"kind": "Pod", "apiVersion": "v1"}).encode(), "not an AdmissionReview"),
        (
            json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).encode(),
            "request:",
        ),
        (
            json.dumps(
                {
                    "kind": "AdmissionReview",
                    "apiVersion": "admission.k8s.io/v1",
                    "request": {"uid": 5},
                }
            ).encode(),
            "request.uid",
        ),
        (
            json.dumps(
                {
                    "kind": "AdmissionReview",
                    "apiVersion": "admission.k8s.io/v1",
                    "request": {"uid": "u", "userInfo": "root"},
                }
            ).encode(),
            "request.userInfo",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_reviews(body, fragment):
    with pytest.raises(ProtocolError) as caught:
        parse_review(body)
    assert fragment in str(caught.value)


def test_decide_never_mutates_its_input():
    import copy

    subject = pod(container(securityContext={"privileged": True}))
    request = request_of(review(subject))
    before = copy.deepcopy(request.object)
    decide(request, default_policy(), Facts(namespace="airflow"))
    assert request.object == before


def test_rule_ids_are_unique_and_every_family_has_an_action():
    from webhook.rules.registry import ALL_RULES

    ids = [rule.id for rule in ALL_RULES]
    assert len(ids) == len(set(ids))
    assert {rule.family for rule in ALL_RULES} == set(default_policy().actions)

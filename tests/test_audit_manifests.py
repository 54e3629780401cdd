"""The audit's manifests (SPEC §13): the PolicyReport CRDs and the audit
component, rendered by the real ``kubectl kustomize`` (the component through
an overlay of the base, as an operator adds it), validated by
kubernetes-validate (strict), the CronJob's pod checked by the PSS restricted
checker, its RBAC exactly the least privilege the audit needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.pss_restricted import check_restricted
from tests.test_manifests import K8S_VERSION, NAMESPACE, ROOT, find, kustomize
from webhook.cli import build_parser

COMPONENT = ROOT / "manifests" / "components" / "audit"
CRDS = ROOT / "manifests" / "crds"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def with_audit(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    overlay = tmp_path_factory.mktemp("overlay")
    manifests = Path(os.path.relpath(ROOT / "manifests", overlay))
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{manifests / 'base'}]\ncomponents: [{manifests / 'components' / 'audit'}]\n"
    )
    return kustomize(overlay)


def test_crds_define_policy_reports_v1alpha2_with_a_schema():
    objects = kustomize(CRDS)
    assert sorted(o["metadata"]["name"] for o in objects) == [
        "clusterpolicyreports.wgpolicyk8s.io",
        "policyreports.wgpolicyk8s.io",
    ]
    for crd in objects:
        assert kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha2" and version["served"] and version["storage"]
        schema = version["schema"]["openAPIV3Schema"]["properties"]
        result = schema["results"]["items"]
        assert result["required"] == ["policy"]
        assert result["properties"]["result"]["enum"] == ["pass", "fail", "warn", "error", "skip"]
        assert set(schema["summary"]["properties"]) == {"pass", "fail", "warn", "error", "skip"}
    scopes = {o["spec"]["names"]["kind"]: o["spec"]["scope"] for o in objects}
    assert scopes == {"PolicyReport": "Namespaced", "ClusterPolicyReport": "Cluster"}


def test_component_adds_a_valid_hourly_cron_job(with_audit: list[Obj]):
    added = [o for o in with_audit if o["metadata"]["name"] == "task-pod-webhook-audit"]
    assert sorted(o["kind"] for o in added) == [
        "ClusterRole", "ClusterRoleBinding", "CronJob", "ServiceAccount",
    ]  # fmt: skip
    for obj in added:
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    cron = find(with_audit, "CronJob")
    assert cron["metadata"]["namespace"] == NAMESPACE
    minute, hour, *rest = cron["spec"]["schedule"].split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert args[0] == "audit" and "--write-reports" in args
    assert args[args.index("--fail-on") + 1] == "never"
    # The flags parse as the CLI's own, and the policy is the mounted ConfigMap's.
    parsed = build_parser().parse_args(args)
    mount = container["volumeMounts"][0]["mountPath"]
    assert str(parsed.policy).startswith(mount)
    (volume,) = pod["spec"]["volumes"]
    policy_map = find(with_audit, "ConfigMap", "task-pod-webhook-policy")
    assert volume["configMap"]["name"] == policy_map["metadata"]["name"]


def test_cron_job_pod_passes_pss_restricted(with_audit: list[Obj]):
    pod = find(with_audit, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    assert check_restricted({"apiVersion": "v1", "kind": "Pod", **pod}) == []
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_audit_rbac_is_least_privilege(with_audit: list[Obj]):
    role = find(with_audit, "ClusterRole", "task-pod-webhook-audit")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods", "namespaces", "serviceaccounts"],
            "verbs": ["list"],
        },
        {
            "apiGroups": ["wgpolicyk8s.io"],
            "resources": ["policyreports"],
            "verbs": ["get", "list", "create", "update"],
        },
    ]
    binding = find(with_audit, "ClusterRoleBinding", "task-pod-webhook-audit")
    assert binding["roleRef"]["name"] == "task-pod-webhook-audit"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "task-pod-webhook-audit", "namespace": NAMESPACE}
    ]
    cron = find(with_audit, "CronJob")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "task-pod-webhook-audit"

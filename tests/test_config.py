"""The policy model: the embedded default is SPEC §5's, errors name their field paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from webhook.policy import PolicyError, default_policy, dump_policy, load_policy, load_policy_text
from webhook.policy.store import PolicyStore

SPEC_DEFAULT = """
match: labels
selector:
  - matchLabels: {kubernetes_executor: "True"}
  - matchLabels: {kubernetes_pod_operator: "True"}
platformUsers: []
exemptNamespaces: [kube-system, kube-public, task-pod-webhook]
labels:
  action: enforce
  set: {task-pod-webhook/enforced: "true"}
  fromNamespace: []
  reservedPrefixes: [task-pod-webhook/]
resources:
  action: enforce
  defaults: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "1", memory: 2Gi}}
  min: {cpu: 100m, memory: 128Mi}
  max: {cpu: "43", memory: 86Gi, ephemeral-storage: 100Gi}
  maxPerPod: {cpu: "43", memory: 86Gi}
  requestsEqualLimits: false
  minExemptContainers: [airflow-xcom-sidecar]
securityContext:
  action: enforce
  runAsUser: 50000
  allowedCapabilities: [NET_BIND_SERVICE]
  readOnlyRootFilesystem: false
volumes:
  action: enforce
  allowed: [configMap, secret, emptyDir, projected, downwardAPI]
  allowedTokenAudiences: []
serviceAccounts:
  action: enforce
  allowed: [default, airflow-worker]
  lookup: false
  identities: {awsAccounts: [], gcpProjects: [], azureClientIds: []}
  onLookupError: deny
placement:
  action: enforce
  nodeSelector: {}
  tolerations: []
  allowedTolerationKeys: []
  priorityClassName: ""
  runtimeClassName: ""
  automountServiceAccountToken: null
"""


def test_the_embedded_default_is_the_specs():
    spec = load_policy_text(SPEC_DEFAULT)
    assert spec == default_policy()
    assert spec.content_hash == default_policy().content_hash


def test_the_printed_default_round_trips():
    assert load_policy_text(dump_policy(default_policy())) == default_policy()


def test_an_empty_file_and_a_partial_file_take_the_defaults():
    assert load_policy_text("") == default_policy()
    partial = load_policy_text("resources: {action: warn}")
    assert partial.resources.action == "warn"
    assert partial.resources.min == default_policy().resources.min


def test_every_error_at_once_with_its_field_path():
    text = """
match: everything
resources:
  min: {cpu: 12x, gpu: "1"}
  bogus: 1
securityContext: {runAsUser: "5"}
selector: [{matchExpressions: [{key: a, operator: In}]}]
serviceAccounts: {onLookupError: maybe}
"""
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    errors = caught.value.errors
    expected_paths = [
        "match:",
        "resources.min.cpu: '12x' is not a valid quantity",
        "resources.min.gpu:",
        "resources.bogus: unknown field",
        "securityContext.runAsUser:",
        "selector[0].matchExpressions[0]: operator In needs a non-empty values list",
        "serviceAccounts.onLookupError:",
    ]
    for path in expected_paths:
        assert any(e.startswith(path) for e in errors), (path, errors)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [", "not valid YAML"),
        ("a: 1\n---\nb: 2", "expected one YAML document"),
        ("[1, 2]", "expected a mapping"),
        ("resources: {min: {cpu: '2'}, max: {cpu: '1'}}", "min.cpu (2) is above max.cpu (1)"),
        ("securityContext: {allowedCapabilities: [SYS_ADMIN]}", "restricted"),
        ("securityContext: {runAsUser: 0}", "securityContext.runAsUser"),
        ("exemptNamespaces: [Not_A_Namespace]", "exemptNamespaces[0]"),
        ("match: labels\nselector: []", "at least one selector"),
    ],
)
def test_rejected_policies(text, fragment):
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    assert any(fragment in e for e in caught.value.errors), caught.value.errors


def test_numbers_are_quantities_with_their_spelling():
    policy = load_policy_text("resources: {max: {cpu: 8, memory: 64Gi}, min: {cpu: 0.25}}")
    assert policy.resources.max["cpu"] == "8"
    assert policy.resources.min["cpu"] == "0.25"


def test_missing_file_is_a_policy_error(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_store_keeps_the_old_policy_when_the_new_one_is_invalid(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text("labels: {set: {team: a}}")
    store = PolicyStore(path)
    assert store.current.labels.set == {"team": "a"}
    assert store.reload_if_changed() is None
    path.write_text("labels: {set: {team: b}}")
    assert store.reload_if_changed() is True
    assert store.current.labels.set == {"team": "b"}
    path.write_text("labels: {set: {dag_id: x}}")
    assert store.reload_if_changed() is False
    assert store.current.labels.set == {"team": "b"}
    assert store.reload_if_changed() is None  # reported once, not on every check


def test_store_follows_a_configmap_symlink_swap(tmp_path: Path):
    first, second = tmp_path / "..2026_01", tmp_path / "..2026_02"
    first.mkdir()
    second.mkdir()
    (first / "policy.yaml").write_text("labels: {set: {team: a}}")
    (second / "policy.yaml").write_text("labels: {set: {team: b}}")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    store = PolicyStore(tmp_path / "policy.yaml")
    (tmp_path / "..data_tmp").symlink_to(second.name)
    (tmp_path / "..data_tmp").rename(tmp_path / "..data")
    assert store.reload_if_changed() is True
    assert store.current.labels.set == {"team": "b"}


def test_default_policy_document_is_valid_yaml():
    assert yaml.safe_load(dump_policy(default_policy()))["securityContext"]["runAsUser"] == 50000

"""The watch-fed caches of ``serve --kubeconfig`` against a real apiserver.

The apiserver calls the registered webhook on every pod create; the webhook
answers from its Namespace and ServiceAccount caches. Proves: cross-account
identities (AWS, GCP, Azure) allowed and denied, a missing account denied; a
namespace relabel, and a ServiceAccount created, annotated with a foreign
cloud identity and deleted, are each seen within seconds; a namespace's
``task-pod-webhook/mode: warn`` label turns denials into warnings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh
from tests.envtest.kit import Cluster

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

NAMESPACE = "data-team"
AWS_OK = "arn:aws:iam::111122223333:role/airflow-tasks"
AWS_OTHER = "arn:aws:iam::999988887777:role/admin"
POLICY = """
labels: {fromNamespace: [team]}
serviceAccounts:
  allowed: ["*"]
  lookup: true
  identities:
    awsAccounts: ["111122223333"]
    gcpProjects: ["data-prod"]
    azureClientIds: ["11111111-2222-3333-4444-555555555555"]
"""
ACCOUNTS = {
    "aws-ok": {"eks.amazonaws.com/role-arn": AWS_OK},
    "aws-other": {"eks.amazonaws.com/role-arn": AWS_OTHER},
    "gcp-ok": {"iam.gke.io/gcp-service-account": "tasks@data-prod.iam.gserviceaccount.com"},
    "gcp-other": {"iam.gke.io/gcp-service-account": "admin@billing.iam.gserviceaccount.com"},
    "azure-ok": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"},
    "azure-other": {"azure.workload.identity/client-id": "99999999-0000-0000-0000-000000000000"},
    "plain": {},
}
SEEN_WITHIN = 5.0  # seconds


@pytest.fixture(scope="module")
def webhook(
    cluster: Cluster, admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    wh.create_namespace(admin, NAMESPACE, {"team": "data"})
    for name, identity in ACCOUNTS.items():
        wh.core(admin).create_namespaced_service_account(
            NAMESPACE, {"metadata": {"name": name, "annotations": identity}}
        )
    with wh.registered_webhook(cluster, tmp_path_factory.mktemp("caches"), POLICY) as server:
        yield server


def _try_create(admin: Any, account: str) -> dict[str, Any] | str:
    """The pod the apiserver would store (server-side dry run), or its refusal message."""
    pod = wh.load_yaml(FIXTURES / "kpo-plain" / "pod.yaml")
    pod["metadata"]["namespace"] = NAMESPACE
    pod["spec"]["serviceAccountName"] = account
    return wh.dry_run_create(admin, pod)


def _eventually(admin: Any, account: str, check: Any, what: str) -> float:
    """Seconds until a create with `account` satisfies `check`; fails after SEEN_WITHIN."""
    started = time.monotonic()
    last: Any = None

    def seen() -> bool:
        nonlocal last
        last = _try_create(admin, account)
        return bool(check(last))

    try:
        wh.wait_until(seen, SEEN_WITHIN, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {str(last)[:400]}") from None
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("account", "fragment"),
    [
        ("aws-ok", None),
        ("aws-other", f'eks.amazonaws.com/role-arn "{AWS_OTHER}" is not in an allowed AWS account'),
        ("gcp-ok", None),
        ("gcp-other", "is not in an allowed GCP project"),
        ("azure-ok", None),
        ("azure-other", "is not an allowed client ID"),
        ("plain", None),
        ("ghost", 'service account "ghost" does not exist'),
    ],
)  # fmt: skip
def test_cross_account_service_accounts(
    admin: Any, webhook: Server, account: str, fragment: str | None
) -> None:
    answer = _try_create(admin, account)
    if fragment is None:
        assert isinstance(answer, dict), answer
        assert answer["metadata"]["labels"]["team"] == "data"  # labels.fromNamespace
    else:
        assert isinstance(answer, str)
        assert "denied the request" in answer
        assert fragment in answer


def test_namespace_relabel_is_seen_within_seconds(admin: Any, webhook: Server) -> None:
    wh.core(admin).patch_namespace(NAMESPACE, {"metadata": {"labels": {"team": "ml"}}})
    try:
        _eventually(
            admin,
            "plain",
            lambda a: isinstance(a, dict) and a["metadata"]["labels"].get("team") == "ml",
            "the relabelled namespace's team label on a new pod",
        )
    finally:
        wh.core(admin).patch_namespace(NAMESPACE, {"metadata": {"labels": {"team": "data"}}})


def test_service_account_created_annotated_and_deleted_are_seen(
    admin: Any, webhook: Server
) -> None:
    name = "late-comer"
    assert 'service account "late-comer" does not exist' in str(_try_create(admin, name))
    wh.core(admin).create_namespaced_service_account(NAMESPACE, {"metadata": {"name": name}})
    _eventually(admin, name, lambda a: isinstance(a, dict), "the new account allowed")
    wh.core(admin).patch_namespaced_service_account(
        name, NAMESPACE, {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": AWS_OTHER}}}
    )
    _eventually(
        admin,
        name,
        lambda a: isinstance(a, str) and "is not in an allowed AWS account" in a,
        "the foreign identity denied",
    )
    wh.core(admin).delete_namespaced_service_account(name, NAMESPACE)
    _eventually(
        admin,
        name,
        lambda a: isinstance(a, str) and 'service account "late-comer" does not exist' in a,
        "the deleted account denied",
    )


def test_namespace_mode_label_turns_enforcement_into_warnings(admin: Any, webhook: Server) -> None:
    namespace = "rollout"
    wh.create_namespace(admin, namespace, {"task-pod-webhook/mode": "warn", "team": "ml"})
    subject = wh.load_yaml(FIXTURES / "kpo-host-network" / "pod.yaml")  # denied when enforced
    subject["metadata"]["namespace"] = namespace
    created, _, headers = wh.core(admin).create_namespaced_pod_with_http_info(
        namespace, subject, dry_run="All"
    )
    stored = admin.sanitize_for_serialization(created)
    assert stored["spec"]["hostNetwork"] is True
    assert "task-pod-webhook/enforced" not in stored["metadata"]["labels"]  # nothing applied
    assert "would deny: spec.hostNetwork" in headers.get("Warning", "")

"""service accounts: allowlist by glob, cross-account identities from the API's facts."""

from __future__ import annotations

import pytest

from tests.podkit import pod, policy
from webhook.policy import default_policy
from webhook.rules.base import Facts, ServiceAccountFact
from webhook.rules.service_accounts import check_service_accounts

NAME_CASES = [
    ("unset means default", {}, None),
    ("airflow-worker", {"serviceAccountName": "airflow-worker"}, None),
    ("admin denied", {"serviceAccountName": "admin"}, "spec.serviceAccountName"),
    ("deprecated field allowed", {"serviceAccount": "airflow-worker"}, None),
    ("deprecated field denied", {"serviceAccount": "admin"}, "spec.serviceAccount"),
    (
        "name wins over deprecated",
        {"serviceAccountName": "default", "serviceAccount": "admin"},
        None,
    ),
]


@pytest.mark.parametrize(
    ("spec", "where"), [c[1:] for c in NAME_CASES], ids=[c[0] for c in NAME_CASES]
)
def test_allowlist(spec, where):
    outcome = check_service_accounts(pod(**spec), default_policy(), Facts())
    assert [v.where for v in outcome.violations] == ([where] if where else [])


def test_globs():
    pol = policy(serviceAccounts={"allowed": ["team-*-runner"]})
    assert not check_service_accounts(
        pod(serviceAccountName="team-a-runner"), pol, Facts()
    ).violations
    assert check_service_accounts(pod(serviceAccountName="team-a-admin"), pol, Facts()).violations


LOOKUP = {
    "serviceAccounts": {
        "lookup": True,
        "allowed": ["*"],
        "identities": {
            "awsAccounts": ["111122223333"],
            "gcpProjects": ["data-*"],
            "azureClientIds": ["00000000-0000-0000-0000-000000000001"],
        },
    }
}
IDENTITY_CASES = [
    (
        "aws same account",
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/task"},
        None,
    ),
    (
        "aws other account",
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::999988887777:role/admin"},
        "AWS account",
    ),
    ("aws malformed arn", {"eks.amazonaws.com/role-arn": "not-an-arn"}, "AWS account"),
    (
        "gcp allowed project",
        {"iam.gke.io/gcp-service-account": "task@data-prod.iam.gserviceaccount.com"},
        None,
    ),
    (
        "gcp other project",
        {"iam.gke.io/gcp-service-account": "x@billing.iam.gserviceaccount.com"},
        "GCP project",
    ),
    (
        "azure allowed",
        {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001"},
        None,
    ),
    (
        "azure other",
        {"azure.workload.identity/client-id": "ffffffff-0000-0000-0000-000000000009"},
        "client ID",
    ),
    ("no identity", {}, None),
]


@pytest.mark.parametrize(
    ("annotations", "fragment"), [c[1:] for c in IDENTITY_CASES], ids=[c[0] for c in IDENTITY_CASES]
)
def test_cross_account_identities(annotations, fragment):
    facts = Facts(service_account=ServiceAccountFact("found", annotations))
    outcome = check_service_accounts(pod(serviceAccountName="task"), policy(**LOOKUP), facts)
    if fragment is None:
        assert outcome.violations == ()
    else:
        (violation,) = outcome.violations
        assert "cross-account identity" in violation.what and fragment in violation.what


def test_missing_account_and_lookup_errors():
    pol = policy(**LOOKUP)
    missing = check_service_accounts(
        pod(), pol, Facts(service_account=ServiceAccountFact("missing"))
    )
    assert 'service account "default" does not exist' in missing.violations[0].what
    failed = Facts(service_account=ServiceAccountFact("error", error="timed out after 0.5s"))
    denied = check_service_accounts(pod(), pol, failed)
    assert (
        "could not be reached (timed out after 0.5s); onLookupError is deny"
        in denied.violations[0].what
    )
    lenient = policy(serviceAccounts={**LOOKUP["serviceAccounts"], "onLookupError": "allow"})
    assert check_service_accounts(pod(), lenient, failed).violations == ()

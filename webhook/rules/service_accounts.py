"""Service accounts (SPEC §4.5): only allowed accounts, only allowed cloud identities.

- The effective name is ``spec.serviceAccountName``, else the deprecated
  ``spec.serviceAccount``, else ``default``; it must match one of the
  ``serviceAccounts.allowed`` globs.
- With ``serviceAccounts.lookup`` on, the account itself (a fact read from the
  API, §6) must exist, and its identity annotations must match the policy:
  ``eks.amazonaws.com/role-arn`` (the AWS account ID in the ARN) against
  ``identities.awsAccounts``, ``iam.gke.io/gcp-service-account`` (the project
  in ``name@PROJECT.iam.gserviceaccount.com``) against ``gcpProjects``,
  ``azure.workload.identity/client-id`` against ``azureClientIds``. When the
  API could not answer, ``onLookupError`` decides (default deny, saying so).
"""

from __future__ import annotations

import json
import re
from typing import Any

from webhook.policy import Policy
from webhook.rules.base import EMPTY, Facts, Outcome, Pod, Violation

AWS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
GCP_SA_ANNOTATION = "iam.gke.io/gcp-service-account"
AZURE_CLIENT_ANNOTATION = "azure.workload.identity/client-id"
_AWS_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/.+")
_GCP_SA = re.compile(r"[^@]+@([a-z][-a-z0-9]*)\.iam\.gserviceaccount\.com")


def effective_service_account(pod: Any) -> tuple[str, str]:
    """(field path, name) of the service account the pod will run as.

    Safe on any object: facts are gathered before the pod's shape is checked."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    if isinstance(spec, dict):
        for field in ("serviceAccountName", "serviceAccount"):
            name = spec.get(field)
            if isinstance(name, str) and name:
                return f"spec.{field}", name
    return "spec.serviceAccountName", "default"


def _identity_violations(
    where: str, name: str, annotations: dict[str, str], policy: Policy
) -> list[Violation]:
    ids = policy.service_accounts.identities
    found = []
    arn = annotations.get(AWS_ROLE_ANNOTATION)
    if arn is not None:
        match = _AWS_ARN.fullmatch(arn)
        if not match or not ids.aws.fullmatch(match.group(1)):
            found.append(
                f"{AWS_ROLE_ANNOTATION} {json.dumps(arn)} is not in an allowed AWS account"
            )
    gcp = annotations.get(GCP_SA_ANNOTATION)
    if gcp is not None:
        match = _GCP_SA.fullmatch(gcp)
        if not match or not ids.gcp.fullmatch(match.group(1)):
            found.append(f"{GCP_SA_ANNOTATION} {json.dumps(gcp)} is not in an allowed GCP project")
    azure = annotations.get(AZURE_CLIENT_ANNOTATION)
    if azure is not None and not ids.azure.fullmatch(azure):
        found.append(f"{AZURE_CLIENT_ANNOTATION} {json.dumps(azure)} is not an allowed client ID")
    return [
        Violation(where, f"service account {json.dumps(name)} has a cross-account identity: {f}")
        for f in found
    ]


def check_service_accounts(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    rules = policy.service_accounts
    where, name = effective_service_account(pod)
    found: list[Violation] = []
    if not rules.allowed_pattern.fullmatch(name):
        found.append(
            Violation(
                where,
                f"service account {json.dumps(name)} is not allowed for task pods; "
                f"allowed: {', '.join(rules.allowed)}",
            )
        )
    elif rules.lookup and facts.service_account is not None:
        fact = facts.service_account
        if fact.status == "missing":
            found.append(Violation(where, f"service account {json.dumps(name)} does not exist"))
        elif fact.status == "error":
            if rules.on_lookup_error == "deny":
                found.append(
                    Violation(
                        where,
                        f"service account {json.dumps(name)} could not be checked: the "
                        f"Kubernetes API could not be reached ({fact.error}); "
                        "onLookupError is deny",
                    )
                )
        else:
            found.extend(_identity_violations(where, name, dict(fact.annotations), policy))
    return Outcome(violations=tuple(found)) if found else EMPTY

"""Small builders of pods and reviews for the tests (plain dicts, as on the wire)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from webhook.admission.decide import Decision, decide
from webhook.admission.protocol import AdmissionRequest, parse_review
from webhook.policy import Policy, default_policy, policy_from_document
from webhook.rules.base import Facts

TASK_LABELS = {"kubernetes_executor": "True", "dag_id": "example", "task_id": "extract"}


def pod(
    *containers: dict[str, Any],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "task-pod", "namespace": "airflow"}
    metadata["labels"] = dict(TASK_LABELS) if labels is None else labels
    if annotations is not None:
        metadata["annotations"] = annotations
    body = {"containers": list(containers) or [container()], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def container(name: str = "base", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "apache/airflow:3.1.0", **fields}


def review(
    obj: Any,
    operation: str = "CREATE",
    *,
    old: Any = None,
    namespace: str = "airflow",
    sub_resource: str | None = None,
    api_version: str = "admission.k8s.io/v1",
    resource: str = "pods",
    kind: str = "Pod",
    uid: str = "0f1e2d3c-0000-4000-8000-000000000001",
    username: str = "system:serviceaccount:airflow:airflow-scheduler",
    groups: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "operation": operation,
        "namespace": namespace,
        "name": "task-pod",
        "userInfo": {"username": username, "groups": groups or ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def request_of(body: dict[str, Any]) -> AdmissionRequest:
    return parse_review(json.dumps(body).encode())


def policy(**document: Any) -> Policy:
    return policy_from_document(document)


def run(
    obj: Any,
    pol: Policy | None = None,
    facts: Facts | None = None,
    endpoint: str = "mutate",
    **review_kwargs: Any,
) -> Decision:
    body = review(copy.deepcopy(obj), **review_kwargs)
    request = request_of(body)
    return decide(
        request,
        pol or default_policy(),
        facts or Facts(namespace=request.namespace),
        endpoint,  # type: ignore[arg-type]
    )


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    return json.loads(base64.b64decode(response["patch"]))  # type: ignore[no-any-return]

"""Applying the webhook configurations that ``kube.webhooks`` builds (SPEC §6):
``register`` creates or replaces them, ``unregister`` deletes them. API errors
propagate for the CLI to report."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from webhook.kube.client import HTTP_NOT_FOUND, ListCall

# --- registration (§6): applying what kube.webhooks builds ----------------


def _operations(
    api_client: kubernetes.client.ApiClient, kind: str
) -> tuple[ListCall, ListCall, ListCall, ListCall]:
    api = kubernetes.client.AdmissionregistrationV1Api(api_client)
    if kind == "MutatingWebhookConfiguration":
        return (
            api.read_mutating_webhook_configuration,
            api.create_mutating_webhook_configuration,
            api.replace_mutating_webhook_configuration,
            api.delete_mutating_webhook_configuration,
        )
    if kind == "ValidatingWebhookConfiguration":
        return (
            api.read_validating_webhook_configuration,
            api.create_validating_webhook_configuration,
            api.replace_validating_webhook_configuration,
            api.delete_validating_webhook_configuration,
        )
    raise ValueError(f"not a webhook configuration kind: {kind!r}")


def register(
    api_client: kubernetes.client.ApiClient, configs: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Create each configuration, or replace it (optimistically, with the
    existing resourceVersion). Returns one line per object, e.g.
    ``mutatingwebhookconfiguration/task-pod-webhook created``."""
    done = []
    for config in configs:
        kind = str(config["kind"])
        name = str(config["metadata"]["name"])
        read, create, replace, _ = _operations(api_client, kind)
        body = copy.deepcopy(dict(config))
        try:
            response = read(name, _preload_content=False)
        except ApiException as exc:
            if exc.status != HTTP_NOT_FOUND:
                raise
            create(body)
            done.append(f"{kind.lower()}/{name} created")
            continue
        try:
            existing = json.loads(response.read())
        finally:
            response.release_conn()
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        replace(name, body)
        done.append(f"{kind.lower()}/{name} configured")
    return done


def unregister(
    api_client: kubernetes.client.ApiClient, name: str = "task-pod-webhook"
) -> list[str]:
    """Delete both configurations; one that is already gone is fine."""
    done = []
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        _, _, _, delete = _operations(api_client, kind)
        try:
            delete(name)
        except ApiException as exc:
            if exc.status != HTTP_NOT_FOUND:
                raise
            done.append(f"{kind.lower()}/{name} not found")
            continue
        done.append(f"{kind.lower()}/{name} deleted")
    return done

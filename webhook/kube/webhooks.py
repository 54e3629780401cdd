"""The webhook registration (SPEC §6): pure constructors of the Mutating- and
ValidatingWebhookConfiguration, as plain dicts.

The same objects ``manifests/base`` ships and ``register`` applies (through
``webhook.kube``); ``configurations_yaml`` renders them for ``register
--dry-run``. One webhook entry per policy selector, each with its
``objectSelector`` (a single entry when ``match: namespace``), a
``namespaceSelector`` that excludes the exempt namespaces, ``failurePolicy:
Fail``, ``sideEffects: None``, ``timeoutSeconds: 3``, ``matchPolicy:
Equivalent`` and, on the mutating side, ``reinvocationPolicy: IfNeeded``.
``build_webhook_configurations`` raises ``ValueError`` for an unusable
service or URL.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from webhook.policy import Policy

POD_RULES: Final[tuple[dict[str, Any], ...]] = (
    {
        "operations": ["CREATE", "UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
        "scope": "Namespaced",
    },
    {
        "operations": ["UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods/ephemeralcontainers"],
        "scope": "Namespaced",
    },
)
_API_VERSION: Final = "admissionregistration.k8s.io/v1"


def webhook_names(policy: Policy, verb: str, name: str = "task-pod-webhook") -> list[str]:
    """``selector-0.mutate.task-pod-webhook.io``, ... (one per selector), or
    ``pods.mutate.task-pod-webhook.io`` when ``match: namespace``."""
    if policy.match == "namespace":
        return [f"pods.{verb}.{name}.io"]
    return [f"selector-{index}.{verb}.{name}.io" for index in range(len(policy.selector))]


def _client_config(
    path: str, ca_bundle: str, service: tuple[str, str] | None, url: str | None
) -> dict[str, Any]:
    config: dict[str, Any]
    if service is not None:
        service_name, service_namespace = service
        config = {
            "service": {
                "name": service_name,
                "namespace": service_namespace,
                "path": path,
                "port": 443,
            }
        }
    else:
        assert url is not None
        config = {"url": url.rstrip("/") + path}
    # Left out when empty, so that `kubectl apply` of the manifests never
    # clears what cert-manager's cainjector (or `register`) put there.
    if ca_bundle:
        config["caBundle"] = ca_bundle
    return config


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"webhook url {url!r} must be https://host[:port][/path]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"webhook url {url!r} must not carry user info, a query or a fragment "
            "(the apiserver rejects them)"
        )


def build_webhook_configurations(
    policy: Policy,
    *,
    ca_bundle: str,
    service: tuple[str, str] | None = None,
    url: str | None = None,
    path_mutate: str = "/mutate",
    path_validate: str = "/validate",
    name: str = "task-pod-webhook",
) -> list[dict[str, Any]]:
    """The MutatingWebhookConfiguration and ValidatingWebhookConfiguration for
    ``policy``, as plain dicts. ``service`` is ``(name, namespace)``; give it or
    ``url`` (the base https URL; the paths are appended), not both.
    ``ca_bundle`` is the base64 PEM bundle; empty leaves ``caBundle`` out."""
    if (service is None) == (url is None):
        raise ValueError("give exactly one of service (name, namespace) or url")
    if url is not None:
        _check_url(url)
    namespace_selector = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": list(policy.exempt_namespaces),
            }
        ]
    }
    if not policy.exempt_namespaces:
        namespace_selector = {}
    object_selectors: list[dict[str, Any] | None]
    if policy.match == "namespace":
        object_selectors = [None]
    else:
        object_selectors = [
            selector.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for selector in policy.selector
        ]

    def webhooks(verb: str, path: str) -> list[dict[str, Any]]:
        entries = []
        for webhook_name, object_selector in zip(
            webhook_names(policy, verb, name), object_selectors, strict=True
        ):
            entry: dict[str, Any] = {
                "name": webhook_name,
                "clientConfig": _client_config(path, ca_bundle, service, url),
                "rules": copy.deepcopy(list(POD_RULES)),
                "namespaceSelector": copy.deepcopy(namespace_selector),
            }
            if object_selector is not None:
                entry["objectSelector"] = object_selector
            entry.update(
                {
                    "failurePolicy": "Fail",
                    "matchPolicy": "Equivalent",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 3,
                }
            )
            if verb == "mutate":
                entry["reinvocationPolicy"] = "IfNeeded"
            entries.append(entry)
        return entries

    metadata = {"name": name, "labels": {"app.kubernetes.io/name": name}}
    return [
        {
            "apiVersion": _API_VERSION,
            "kind": "MutatingWebhookConfiguration",
            "metadata": copy.deepcopy(metadata),
            "webhooks": webhooks("mutate", path_mutate),
        },
        {
            "apiVersion": _API_VERSION,
            "kind": "ValidatingWebhookConfiguration",
            "metadata": copy.deepcopy(metadata),
            "webhooks": webhooks("validate", path_validate),
        },
    ]


def ca_bundle_from(data: bytes) -> str:
    """The ``caBundle`` value for a ``--ca-bundle-file``: PEM is base64-encoded,
    text that already is base64 of a PEM (what ``certs`` prints) passes through."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return base64.b64encode(data).decode("ascii")
    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error:
        decoded = b""
    if not decoded.lstrip().startswith(b"-----BEGIN"):
        raise ValueError("the CA bundle is neither PEM nor base64-encoded PEM")
    return text.decode("ascii")


def configurations_yaml(configs: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML of the configurations (``register --dry-run``)."""
    return yaml.safe_dump_all(
        [dict(config) for config in configs], sort_keys=False, default_flow_style=False
    )

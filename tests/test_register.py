"""The webhook configurations (SPEC §6): every field, schema validity with
kubernetes-validate (strict, the newest schema it ships), and register's
refusal of other kinds. ``register`` / ``unregister`` against a real
kube-apiserver: tests/envtest/test_register_and_update.py."""

from __future__ import annotations

import base64
import copy
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml

from webhook.kube.apply import register
from webhook.kube.webhooks import (
    build_webhook_configurations,
    ca_bundle_from,
    configurations_yaml,
    webhook_names,
)
from webhook.policy import Policy, default_policy, policy_from_document

K8S_VERSION = kubernetes_validate.latest_version()
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CA_BUNDLE = base64.b64encode(PEM).decode()
SERVICE = ("task-pod-webhook", "task-pod-webhook")
EXEMPT = {
    "matchExpressions": [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "kube-public", "task-pod-webhook"],
        }
    ]
}
RULES = [
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
]
NAMESPACE_POLICY: Policy = policy_from_document(
    {"match": "namespace", "platformUsers": ["system:serviceaccount:airflow:*"]}
)


def by_kind(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert [c["kind"] for c in configs] == [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    return {c["kind"]: c for c in configs}


def assert_common(webhook: dict[str, Any], *, mutating: bool) -> None:
    assert webhook["rules"] == RULES
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["timeoutSeconds"] == 3
    assert webhook["matchPolicy"] == "Equivalent"
    if mutating:
        assert webhook["reinvocationPolicy"] == "IfNeeded"
    else:
        assert "reinvocationPolicy" not in webhook  # not a field of validating webhooks


def test_default_policy_service_reference() -> None:
    configs = by_kind(
        build_webhook_configurations(default_policy(), ca_bundle=CA_BUNDLE, service=SERVICE)
    )
    for kind, verb, path in [
        ("MutatingWebhookConfiguration", "mutate", "/mutate"),
        ("ValidatingWebhookConfiguration", "validate", "/validate"),
    ]:
        config = configs[kind]
        assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert config["metadata"]["name"] == "task-pod-webhook"
        webhooks = config["webhooks"]
        # One entry per selector, each with that selector as its objectSelector.
        assert [w["name"] for w in webhooks] == [
            f"selector-0.{verb}.task-pod-webhook.io",
            f"selector-1.{verb}.task-pod-webhook.io",
        ]
        assert [w["objectSelector"] for w in webhooks] == [
            {"matchLabels": {"kubernetes_executor": "True"}},
            {"matchLabels": {"kubernetes_pod_operator": "True"}},
        ]
        for webhook in webhooks:
            assert webhook["clientConfig"] == {
                "service": {
                    "name": "task-pod-webhook",
                    "namespace": "task-pod-webhook",
                    "path": path,
                    "port": 443,
                },
                "caBundle": CA_BUNDLE,
            }
            assert webhook["namespaceSelector"] == EXEMPT
            assert_common(webhook, mutating=verb == "mutate")


def test_match_namespace_is_one_entry_without_object_selector() -> None:
    configs = by_kind(
        build_webhook_configurations(NAMESPACE_POLICY, ca_bundle=CA_BUNDLE, service=SERVICE)
    )
    for kind, verb in [
        ("MutatingWebhookConfiguration", "mutate"),
        ("ValidatingWebhookConfiguration", "validate"),
    ]:
        (webhook,) = configs[kind]["webhooks"]
        assert webhook["name"] == f"pods.{verb}.task-pod-webhook.io"
        assert "objectSelector" not in webhook
        assert webhook["namespaceSelector"] == EXEMPT
        assert_common(webhook, mutating=verb == "mutate")


def test_url_client_config() -> None:
    configs = by_kind(
        build_webhook_configurations(
            default_policy(), ca_bundle=CA_BUNDLE, url="https://webhook.example.com:8443/"
        )
    )
    mutating = configs["MutatingWebhookConfiguration"]["webhooks"]
    validating = configs["ValidatingWebhookConfiguration"]["webhooks"]
    assert {w["clientConfig"]["url"] for w in mutating} == {
        "https://webhook.example.com:8443/mutate"
    }
    assert {w["clientConfig"]["url"] for w in validating} == {
        "https://webhook.example.com:8443/validate"
    }
    for webhook in mutating + validating:
        assert "service" not in webhook["clientConfig"]
        assert webhook["clientConfig"]["caBundle"] == CA_BUNDLE


def test_selector_expressions_and_custom_names() -> None:
    policy = policy_from_document(
        {
            "selector": [
                {
                    "matchLabels": {"platform/tier": "tasks"},
                    "matchExpressions": [
                        {"key": "team", "operator": "In", "values": ["a", "b"]},
                        {"key": "legacy", "operator": "DoesNotExist"},
                    ],
                }
            ],
            "exemptNamespaces": [],
        }
    )
    configs = build_webhook_configurations(
        policy,
        ca_bundle="",
        service=("tpw", "platform"),
        path_mutate="/m",
        path_validate="/v",
        name="tpw-staging",
    )
    mutating, validating = configs
    assert mutating["metadata"]["name"] == validating["metadata"]["name"] == "tpw-staging"
    (webhook,) = mutating["webhooks"]
    assert webhook["name"] == "selector-0.mutate.tpw-staging.io"
    assert webhook["objectSelector"] == {
        "matchLabels": {"platform/tier": "tasks"},
        "matchExpressions": [
            {"key": "team", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert webhook["namespaceSelector"] == {}  # no exempt namespaces: every namespace
    # An empty caBundle is left out, so `kubectl apply` never clears an injected one.
    assert webhook["clientConfig"] == {
        "service": {"name": "tpw", "namespace": "platform", "path": "/m", "port": 443}
    }
    assert validating["webhooks"][0]["clientConfig"]["service"]["path"] == "/v"
    for config in configs:
        kubernetes_validate.validate(config, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "options",
    [
        {"service": SERVICE},
        {"service": SERVICE, "policy": NAMESPACE_POLICY},
        {"url": "https://10.0.0.5:8443"},
        {"url": "https://webhook.example.com/base/", "ca_bundle": ""},
    ],
    ids=["service", "namespace-mode", "url", "url-no-ca"],
)
def test_configurations_validate_against_the_kubernetes_schema(options: dict[str, Any]) -> None:
    options = {"policy": default_policy(), "ca_bundle": CA_BUNDLE, **options}
    policy = options.pop("policy")
    for config in build_webhook_configurations(policy, **options):
        assert kubernetes_validate.validate(config, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of service"),
        ({"service": SERVICE, "url": "https://x"}, "exactly one of service"),
        ({"url": "http://webhook:8443"}, "must be https"),
        ({"url": "https://webhook:8443/?a=b"}, "must not carry"),
        ({"url": "https://user:pw@webhook:8443/"}, "must not carry"),
    ],
)
def test_unusable_client_config_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_webhook_configurations(default_policy(), ca_bundle="", **options)


def test_webhook_names_are_unique_and_qualified() -> None:
    policy = policy_from_document({"selector": [{"matchLabels": {"a": str(i)}} for i in range(5)]})
    names = webhook_names(policy, "mutate") + webhook_names(policy, "validate")
    assert len(set(names)) == 10
    assert all(name.count(".") >= 2 for name in names)


def test_configurations_yaml_is_multi_document() -> None:
    configs = build_webhook_configurations(default_policy(), ca_bundle=CA_BUNDLE, service=SERVICE)
    assert list(yaml.safe_load_all(configurations_yaml(configs))) == configs


def test_ca_bundle_from_pem_or_base64() -> None:
    assert ca_bundle_from(PEM) == CA_BUNDLE
    assert ca_bundle_from(CA_BUNDLE.encode() + b"\n") == CA_BUNDLE
    with pytest.raises(ValueError, match="neither PEM nor base64"):
        ca_bundle_from(b"hello")


# --- register / unregister ------------------------------------------------------
# Against a real kube-apiserver: tests/envtest/test_register_and_update.py.


def test_register_refuses_other_kinds() -> None:
    # Refused before any request: the client points nowhere.
    client = kubernetes.client.ApiClient()
    bad = copy.deepcopy(
        build_webhook_configurations(default_policy(), ca_bundle="", service=SERVICE)
    )
    bad[0]["kind"] = "Secret"
    with pytest.raises(ValueError, match="not a webhook configuration kind"):
        register(client, bad)

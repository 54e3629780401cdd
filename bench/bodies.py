"""The request bodies of the benchmark, generated from a real Airflow fixture.

``python bench/bodies.py OUT_DIR`` writes one JSON file per body and prints a
JSON summary (name, file name, size in bytes).

Every body starts from ``tests/fixtures/kex-dags-in-image/pod.yaml``: a
KubernetesExecutor worker pod exactly as Airflow's PodGenerator makes it. A
mutating webhook does not see that pod as sent, though: the apiserver has
applied its defaults and the built-in admission plugins that run before the
webhooks (ServiceAccount: the projected token volume and its mounts;
DefaultTolerationSeconds; Priority) and the field manager has recorded
``managedFields``. The CREATE bodies carry those, so they are the size and
shape of what a cluster sends.

* ``pod-1``: the worker pod (1 container): patched (resources, security
  context, labels).
* ``pod-50``: the same pod with 49 more containers (copies of ``base``).
* ``deny``: ``pod-1`` plus a PersistentVolumeClaim volume and
  ``hostNetwork: true``: denied with two violations.
* ``update``: an UPDATE of the live pod (after our patch, scheduled and
  running) whose labels were edited (the platform label dropped, a reserved
  ``task-pod-webhook/`` label added): object and oldObject, labels put right.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "kex-dags-in-image" / "pod.yaml"
NAMESPACE = "airflow"
SCHEDULER = "system:serviceaccount:airflow:airflow-scheduler"
TOKEN_VOLUME = "kube-api-access-x7k2q"
NAMES = ("pod-1", "pod-50", "deny", "update")
CREATED = "2025-06-01T02:00:04Z"


def _token_volume() -> dict[str, Any]:
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace",
                                },
                            }
                        ]
                    }
                },
            ],
        },
    }


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("imagePullPolicy", "IfNotPresent")
    container.setdefault("resources", {})
    container.setdefault("volumeMounts", []).append(
        {
            "name": TOKEN_VOLUME,
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    )


def _managed_fields(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``managedFields`` entry like the one the field manager records for the
    kubernetes Python client's create (every field the client sent)."""

    def fields(value: Any) -> Any:
        if isinstance(value, dict):
            return {f"f:{key}": fields(sub) for key, sub in value.items()}
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out = {}
            for item in value:
                key = item.get("name") or item.get("mountPath") or item.get("key")
                out[f'k:{{"name":"{key}"}}'] = {".": {}, **fields(item)}
            return out
        return {}

    sent = {"metadata": {k: pod["metadata"][k] for k in ("annotations", "labels")}}
    sent["spec"] = pod["spec"]
    return [
        {
            "manager": "OpenAPI-Generator",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-06-01T02:00:04Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields(sent),
        }
    ]


def admitted_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` as a mutating webhook receives it on CREATE (apiserver defaults,
    built-in admission plugins, managedFields)."""
    pod = copy.deepcopy(pod)
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    spec = pod["spec"]
    for container in spec["containers"]:
        _default_container(container)
    spec.setdefault("volumes", []).append(_token_volume())
    spec.update(
        {
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "serviceAccount": spec.get("serviceAccountName", "default"),
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        }
    )
    pod["metadata"]["managedFields"] = _managed_fields(pod)
    return pod


def review(
    pod: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str = "9c1e2b7a-5d4f-4e3a-8b6c-0f1a2d3e4b5c",
) -> dict[str, Any]:
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": pod["metadata"]["name"],
            "namespace": NAMESPACE,
            "operation": operation,
            "userInfo": {
                "username": SCHEDULER,
                "uid": "5b2d7c1e-0f3a-4e8b-a6d9-1c4e7f2a8b35",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:airflow",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": old,
            "dryRun": False,
            "options": {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
            },
        },
    }


def fixture_pod() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    return loaded


def with_containers(pod: dict[str, Any], count: int) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    base = pod["spec"]["containers"][0]
    for index in range(1, count):
        extra = copy.deepcopy(base)
        extra["name"] = f"worker-{index}"
        pod["spec"]["containers"].append(extra)
    return pod


def denied_pod(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["hostNetwork"] = True
    pod["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "data"}})
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/data"})
    return pod


def _our_patch(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The patch our /mutate returns for ``pod`` (the decision code, in process)."""
    from webhook.admission.decide import decide
    from webhook.admission.facts import NoKubeFacts
    from webhook.admission.protocol import parse_review
    from webhook.policy import default_policy

    policy = default_policy()
    request = parse_review(orjson.dumps(review(pod)))
    return decide(request, policy, NoKubeFacts().facts(NAMESPACE, policy)).patch


def live_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` after our patch, created, scheduled and running."""
    live: dict[str, Any] = jsonpatch.apply_patch(pod, _our_patch(pod), in_place=False)
    live["metadata"].update(
        {
            "uid": "3f6c2a9e-8d41-4b7a-9c55-2e1f0d7b6a90",
            "resourceVersion": "48213",
            "creationTimestamp": "2025-06-01T02:00:04Z",
        }
    )
    live["spec"]["nodeName"] = "node-1"
    live["status"] = {
        "phase": "Running",
        "hostIP": "10.0.1.12",
        "podIP": "10.244.1.37",
        "podIPs": [{"ip": "10.244.1.37"}],
        "qosClass": "Burstable",
        "startTime": "2025-06-01T02:00:04Z",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": "2025-06-01T02:00:09Z"}
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
        ]
        + [{"type": "PodScheduled", "status": "True", "lastTransitionTime": CREATED}],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "docker.io/" + c["image"] + "@sha256:" + "0" * 64,
                "containerID": "containerd://" + "1" * 64,
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2025-06-01T02:00:08Z"}},
                "lastState": {},
            }
            for c in live["spec"]["containers"]
        ],
    }
    return live


def updated_labels(live: dict[str, Any]) -> dict[str, Any]:
    """An edit of the live pod's labels: the platform label dropped, a reserved one added."""
    new = copy.deepcopy(live)
    labels = new["metadata"]["labels"]
    labels.pop("task-pod-webhook/enforced", None)
    labels["task-pod-webhook/tier"] = "gold"
    new["metadata"]["resourceVersion"] = "48240"
    return new


TENANT_LABEL = "tenants.example/name"


def profiles_policy(count: int) -> dict[str, Any]:
    """A policy document with ``count`` profiles (SPEC §12), one per tenant namespace,
    each with its own bounds and worker account, as a platform of ``count`` Airflow
    deployments would write it. ``tenant_labels(count - 1)`` selects the last one:
    the worst case, every selector evaluated."""
    return {
        "profiles": [
            {
                "name": f"tenant-{index:02d}",
                "namespaceSelector": {"matchLabels": {TENANT_LABEL: f"tenant-{index:02d}"}},
                "resources": {
                    "max": {"cpu": str(8 + index), "memory": f"{32 + index}Gi"},
                    "maxPerPod": {"cpu": str(8 + index), "memory": f"{32 + index}Gi"},
                },
                "serviceAccounts": {"allowed": [f"tenant-{index:02d}-worker", "airflow-worker"]},
            }
            for index in range(count)
        ]
    }


def tenant_labels(index: int) -> dict[str, str]:
    """The labels of the tenant namespace of profile ``index``, as the cache holds them."""
    return {"kubernetes.io/metadata.name": NAMESPACE, TENANT_LABEL: f"tenant-{index:02d}"}


def build() -> dict[str, dict[str, Any]]:
    pod = fixture_pod()
    one = admitted_pod(pod)
    live = live_pod(one)
    return {
        "pod-1": review(one),
        "pod-50": review(admitted_pod(with_containers(pod, 50))),
        "deny": review(admitted_pod(denied_pod(pod))),
        "update": review(updated_labels(live), "UPDATE", live),
    }


def write_all(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write every body as ``OUT_DIR/NAME.json``; return name -> {file, bytes, containers}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, body in build().items():
        data = orjson.dumps(body)
        (out_dir / f"{name}.json").write_bytes(data)
        summary[name] = {
            "file": f"{name}.json",
            "bytes": len(data),
            "containers": len(body["request"]["object"]["spec"]["containers"]),
            "operation": body["request"]["operation"],
        }
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: bodies.py OUT_DIR", file=sys.stderr)
        return 2
    print(json.dumps(write_all(Path(argv[0])), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python
"""Write the Airflow-made fixture cases (tests/fixtures/kex-*, tests/fixtures/kpo-*).

Run by hand, in the Airflow venv (see README.md); it is not part of the test suite:

    tools/airflow_fixtures/.venv-airflow/bin/python tools/airflow_fixtures/generate.py

Every pod is produced by Airflow's own code, as it would reach the apiserver:

* ``kex-*``: KubernetesExecutor workers. A DAG is defined with the task's
  ``executor_config``, serialized and deserialized as the scheduler does, an
  ``ExecuteTask`` workload is made for its task instance, and the executor's own
  pod builder (``AirflowKubernetesScheduler._build_pod_request``, which calls
  ``PodGenerator.construct_pod``) turns it into the worker pod, from one of the
  provider's ``pod_template_file_examples/*.yaml``.
* ``kpo-*``: ``KubernetesPodOperator(...).build_pod_request_obj(context)``.

The pod is written as ``ApiClient().sanitize_for_serialization(pod)`` (the JSON
body of the create request), as YAML, with ``apiVersion: v1`` / ``kind: Pod``.
Only ``pod.yaml`` and ``case.yaml`` are (re)written in each case folder; any
other file there (expected results) is left alone.

What is not Airflow's own, and why:

* The provider's example templates carry Helm's ``RELEASE-NAME`` placeholder.
  They are rendered as the chart would for a release named ``airflow``, whose
  worker service account is ``airflow-worker`` (``RELEASE-NAME`` -> ``airflow``,
  ``RELEASE-NAME-worker-serviceaccount`` -> ``airflow-worker``). One case uses
  a template verbatim (its service account is not allowed), and one fixes it
  with a pod_override.
* Pod names end in a random 8-character suffix (``secrets.choice``); it is drawn
  from a generator seeded with the case name, so reruns give identical files.
  Task instance ids are likewise derived from the case name.
* The workload's JWT is empty (no JWT generator is configured; the scheduler's
  would put a signed token there).
* KubernetesPodOperator's hook runs the kubernetes client's in-cluster config
  loader against a fake service-account token (as in a worker pod), so
  ``airflow_kpo_in_cluster`` is ``"True"``. No request is ever sent.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import types
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "tests" / "fixtures"
NAMESPACE = "airflow"
WORKER_IMAGE_REPOSITORY = "apache/airflow"
SCHEDULER_JOB_ID = "7"
LOGICAL_DATE = dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.UTC)
START_DATE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ID_NAMESPACE = uuid.UUID("6f1c1b1e-4b5e-4c1a-9a57-6b1d8d1f0a11")

# Airflow reads its configuration at import time: a throwaway AIRFLOW_HOME, the
# executor's settings, the Kubernetes connection (in-cluster, as in a worker).
_WORK = Path(tempfile.mkdtemp(prefix="airflow-fixtures-"))
os.environ["AIRFLOW_HOME"] = str(_WORK / "airflow-home")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "KubernetesExecutor"
os.environ["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] = NAMESPACE
os.environ["AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY"] = WORKER_IMAGE_REPOSITORY
os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = (
    '{"conn_type": "kubernetes", "extra": {"in_cluster": true}}'
)
os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"  # never contacted
os.environ["KUBERNETES_SERVICE_PORT"] = "443"

import airflow  # noqa: E402
import airflow.providers.cncf.kubernetes as cncf_kubernetes  # noqa: E402
import urllib3  # noqa: E402
import yaml  # noqa: E402
from airflow.executors import workloads  # noqa: E402
from airflow.models import DagModel, DagRun, TaskInstance  # noqa: E402
from airflow.providers.cncf.kubernetes import kubernetes_helper_functions  # noqa: E402
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor  # noqa: E402
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob  # noqa: E402
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (  # noqa: E402
    AirflowKubernetesScheduler,
)
from airflow.providers.cncf.kubernetes.kube_config import KubeConfig  # noqa: E402
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: E402
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator  # noqa: E402
from airflow.providers.standard.operators.empty import EmptyOperator  # noqa: E402
from airflow.sdk import DAG  # noqa: E402
from airflow.serialization.serialized_objects import DagSerialization  # noqa: E402
from airflow.utils.types import DagRunType  # noqa: E402
from kubernetes.client import ApiClient  # noqa: E402
from kubernetes.client import models as k8s  # noqa: E402
from kubernetes.config import incluster_config  # noqa: E402

AIRFLOW_VERSION = airflow.__version__
PROVIDER_VERSION = importlib.metadata.version("apache-airflow-providers-cncf-kubernetes")
WORKER_IMAGE_TAG = AIRFLOW_VERSION
TEMPLATE_EXAMPLES = Path(cncf_kubernetes.__file__).parent / "pod_template_file_examples"


# --- the environment Airflow's code runs in ---------------------------------------


def _fake_in_cluster_service_account() -> None:
    """A token and CA file where the in-cluster loader looks for them (never used)."""
    sa = _WORK / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("fixture-token\n")
    (sa / "ca.crt").write_text("fixture-ca\n")
    incluster_config.SERVICE_TOKEN_FILENAME = str(sa / "token")
    incluster_config.SERVICE_CERT_FILENAME = str(sa / "ca.crt")


def _render_templates() -> dict[str, Path]:
    """The provider's example templates, rendered as the Helm chart would (release ``airflow``)."""
    out = _WORK / "templates"
    out.mkdir()
    rendered: dict[str, Path] = {}
    for source in sorted(TEMPLATE_EXAMPLES.glob("*.yaml")):
        text = source.read_text()
        text = text.replace("RELEASE-NAME-worker-serviceaccount", "airflow-worker")
        text = text.replace("RELEASE-NAME", "airflow")
        target = out / source.name
        target.write_text(text)
        rendered[source.stem] = target
        rendered[f"{source.stem}:verbatim"] = source
    return rendered


_fake_in_cluster_service_account()
TEMPLATES = _render_templates()
# The cluster's [kubernetes_executor] pod_template_file: the rendered dags-in-image example.
os.environ["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"] = str(
    TEMPLATES["dags_in_image_template"]
)
os.environ["AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG"] = WORKER_IMAGE_TAG


def _seed(case_name: str) -> None:
    """Pod-name suffixes are random (secrets.choice); draw them from a seeded generator."""
    kubernetes_helper_functions.secrets = random.Random(f"suffix:{case_name}")  # type: ignore[assignment]


def _ids(case_name: str) -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.uuid5(ID_NAMESPACE, f"ti:{case_name}"), uuid.uuid5(
        ID_NAMESPACE, f"dag-version:{case_name}"
    )


def _dag_run(dag_id: str, run_type: DagRunType) -> DagRun:
    run = DagRun(dag_id, logical_date=LOGICAL_DATE, run_type=run_type)
    run.run_id = DagRun.generate_run_id(
        run_type=run_type, logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE
    )
    return run


def _serialize(pod: k8s.V1Pod) -> dict[str, Any]:
    body = ApiClient().sanitize_for_serialization(pod)
    # Both builders set these already (KPO itself, KE through the template); make sure.
    return {"apiVersion": body.pop("apiVersion", "v1"), "kind": body.pop("kind", "Pod"), **body}


# --- KubernetesExecutor ---------------------------------------------------------------


def executor_pod(
    case_name: str,
    *,
    dag_id: str,
    task_id: str,
    executor_config: dict[str, Any] | None = None,
    template: str | None = None,
    map_index: int = -1,
    try_number: int = 1,
    run_type: DagRunType = DagRunType.SCHEDULED,
) -> dict[str, Any]:
    """The worker pod KubernetesExecutor creates for one task instance."""
    _seed(case_name)
    config = dict(executor_config or {})
    if template is not None:
        config["pod_template_file"] = str(TEMPLATES[template])
    with DAG(dag_id, schedule="0 2 * * *", start_date=START_DATE, catchup=False) as dag:
        EmptyOperator(task_id=task_id, executor_config=config)
    # The scheduler works from the serialized DAG (pod_override goes through it too).
    scheduler_dag = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    task = scheduler_dag.get_task(task_id)

    run = _dag_run(dag_id, run_type)
    model = DagModel(dag_id=dag_id)
    model.bundle_name = "dags-folder"
    model.relative_fileloc = f"{dag_id}.py"
    ti_id, dag_version_id = _ids(case_name)
    ti = TaskInstance(task, run_id=run.run_id, map_index=map_index, dag_version_id=dag_version_id)
    ti.id = ti_id
    ti.try_number = try_number
    ti.dag_run = run
    ti.dag_model = model
    workload = workloads.ExecuteTask.make(ti)

    # KubernetesExecutor._process_workloads + execute_async, then the scheduler's pod builder.
    if KubernetesExecutor.supports_task_instance_uuid:
        raise SystemExit(
            "This Airflow keys executor jobs by task instance UUID: update generate.py "
            "(KubernetesExecutor._process_workloads) before regenerating."
        )
    key = workload.ti.key
    ti_config = workload.ti.executor_config or {}
    job = KubernetesJob(
        key,
        [workload],
        PodGenerator.from_obj(ti_config),
        ti_config.get("pod_template_file"),
        None,
    )
    scheduler = types.SimpleNamespace(
        kube_config=KubeConfig(),
        namespace=NAMESPACE,
        scheduler_job_id=SCHEDULER_JOB_ID,
        supports_task_instance_uuid=False,
        log=logging.getLogger("airflow_fixtures.executor"),
    )
    pod = AirflowKubernetesScheduler._build_pod_request(scheduler, job)  # type: ignore[arg-type]
    return _serialize(pod)


def base(**fields: Any) -> k8s.V1Container:
    """The ``base`` container of a pod_override (Airflow merges it into the worker's)."""
    return k8s.V1Container(name="base", **fields)


def override(containers: list[k8s.V1Container] | None = None, metadata=None, **spec: Any) -> dict:
    """``executor_config={"pod_override": k8s.V1Pod(...)}`` as a DAG author writes it."""
    return {
        "pod_override": k8s.V1Pod(
            metadata=metadata,
            spec=k8s.V1PodSpec(containers=containers or [base()], **spec),
        )
    }


# --- KubernetesPodOperator ----------------------------------------------------------


def operator_pod(
    case_name: str,
    *,
    dag_id: str,
    task_id: str,
    map_index: int = -1,
    try_number: int = 1,
    run_type: DagRunType = DagRunType.SCHEDULED,
    **operator_args: Any,
) -> dict[str, Any]:
    """The pod KubernetesPodOperator.execute() would create (build_pod_request_obj)."""
    _seed(case_name)
    operator_args.setdefault("namespace", NAMESPACE)
    operator_args.setdefault("image", "python:3.12-slim")
    operator_args.setdefault("cmds", ["python", "-c"])
    operator_args.setdefault("arguments", ["print('hello from the task pod')"])
    with DAG(dag_id, schedule="0 2 * * *", start_date=START_DATE, catchup=False) as dag:
        operator = KubernetesPodOperator(task_id=task_id, **operator_args)
    run = _dag_run(dag_id, run_type)
    ti_id, _ = _ids(case_name)
    ti = types.SimpleNamespace(
        id=ti_id,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run.run_id,
        map_index=map_index,
        try_number=try_number,
    )
    context = {
        "dag": dag,
        "task": operator,
        "ti": ti,
        "task_instance": ti,
        "run_id": run.run_id,
        "logical_date": LOGICAL_DATE,
    }
    pod = operator.build_pod_request_obj(context)  # type: ignore[arg-type]
    KPO_REQUESTS[case_name] = kpo_requests(operator, context, pod)
    return _serialize(pod)


# --- what KubernetesPodOperator sends to find and relabel its pod --------------------
#
# KPO finds its pod again (to reattach, log its events, delete it) with a label
# selector built from the labels it sent, and when the task ends it PATCHes the
# pod with already_checked=True. Both requests are recorded as KPO's own
# Kubernetes client puts them on the wire, in kpo-requests.yaml beside the pod, so
# the test suite (without Airflow) can show that the mutated pod is still found
# and that the relabel passes the webhook untouched.

KPO_REQUESTS: dict[str, dict[str, Any]] = {}
KPO_REQUESTS_FILE = "kpo-requests.yaml"


class _Wire:
    """Stands in for urllib3's PoolManager under KPO's client: records each request
    as it would be sent, answers with an empty pod list (GET) or the pod (PATCH)."""

    def __init__(self, pod_body: dict[str, Any]) -> None:
        self.pod_body = pod_body
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.HTTPResponse:
        query = urllib.parse.urlencode(kwargs.get("fields") or [])
        parts = urllib.parse.urlsplit(f"{url}?{query}" if query else url)
        body = kwargs.get("body")
        self.sent.append(
            {
                "method": method,
                "path": parts.path,
                "query": dict(urllib.parse.parse_qsl(parts.query)),
                "contentType": (kwargs.get("headers") or {}).get("Content-Type"),
                "body": None if body is None else json.loads(body),
            }
        )
        empty = {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}
        answer = empty if method == "GET" else self.pod_body
        return urllib3.HTTPResponse(
            body=json.dumps(answer).encode(),
            status=200,
            headers={"Content-Type": "application/json"},
            preload_content=True,
        )


def kpo_requests(operator: KubernetesPodOperator, context: dict[str, Any], pod: k8s.V1Pod) -> dict:
    """KPO's find_pod (before it creates the pod) and patch_already_checked (after the task)."""
    wire = _Wire(_serialize(pod))
    operator.client.api_client.rest_client.pool_manager = wire
    if operator.find_pod(pod.metadata.namespace, context) is not None:  # type: ignore[arg-type]
        raise SystemExit("find_pod found a pod in an empty list")
    operator.patch_already_checked(pod, reraise=True)
    if [r["method"] for r in wire.sent] != ["GET", "PATCH"]:
        raise SystemExit(f"KPO sent {[r['method'] for r in wire.sent]}, expected GET, PATCH")
    find, relabel = wire.sent
    return {
        "findPod": {k: find[k] for k in ("method", "path", "query")},
        "relabel": {k: relabel[k] for k in ("method", "path", "contentType", "body")},
    }


# --- the cases -----------------------------------------------------------------------


@dataclass
class Case:
    name: str
    description: str
    build: Callable[[str], dict[str, Any]]
    allowed: bool = True
    message: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the case's own policy (policy.yaml): a document, or its text as written; None: the default
    policy: dict[str, Any] | str | None = None


def kex(
    name: str, description: str, /, *, allowed: bool = True, message=(), warnings=(), **kwargs
) -> Case:
    kwargs.setdefault("dag_id", "orders_etl")
    return Case(
        f"kex-{name}",
        description,
        lambda case_name: executor_pod(case_name, **kwargs),
        allowed,
        list(message),
        list(warnings),
    )


def kpo(
    name: str,
    description: str,
    /,
    *,
    allowed: bool = True,
    message=(),
    warnings=(),
    policy=None,
    **kwargs,
) -> Case:
    kwargs.setdefault("dag_id", "ml_training")
    return Case(
        f"kpo-{name}",
        description,
        lambda case_name: operator_pod(case_name, **kwargs),
        allowed,
        list(message),
        list(warnings),
        policy,
    )


def sc(**fields: Any) -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(**fields)


def psc(**fields: Any) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(**fields)


def resources(cpu: str, memory: str) -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
    )


def mount(name: str, path: str, **fields: Any) -> k8s.V1VolumeMount:
    return k8s.V1VolumeMount(name=name, mount_path=path, **fields)


PVC_DATA = k8s.V1Volume(
    name="data",
    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="shared-data"),
)

# Labels under the platform's reserved prefix, as a DAG author might set them.
SPOOFED_LABELS = {
    "task-pod-webhook/enforced": "false",
    "task-pod-webhook/tier": "gold",
    "team": "ml",
}
SPOOFED_MESSAGE = [
    "metadata.labels[task-pod-webhook/enforced]",
    "metadata.labels[task-pod-webhook/tier]",
    "reserved for the platform",
]

CASES: list[Case] = [
    # The provider's example worker templates, no executor_config.
    kex(
        "dags-in-image",
        (
            "KubernetesExecutor worker from the dags-in-image example template: a clean task pod, "
            "mutated and allowed"
        ),
        task_id="extract_orders",
    ),
    kex(
        "git-sync",
        (
            "KubernetesExecutor worker from the git-sync example template (git-sync init "
            "container, "
            "emptyDir dags): allowed"
        ),
        task_id="extract_orders",
        template="git_sync_template",
    ),
    kex(
        "dags-in-volume",
        "KubernetesExecutor worker from the dags-in-volume example template mounts a PVC: denied",
        task_id="extract_orders",
        template="dags_in_volume_template",
        allowed=False,
        message=["spec.volumes[0] (name=airflow-dags)", "persistentVolumeClaim"],
    ),
    kex(
        "template-release-placeholder",
        (
            "The dags-in-image example template used verbatim: its service account "
            "RELEASE-NAME-worker-serviceaccount is not allowed"
        ),
        task_id="extract_orders",
        template="dags_in_image_template:verbatim",
        allowed=False,
        message=["spec.serviceAccountName", '"RELEASE-NAME-worker-serviceaccount"'],
    ),
    kex(
        "template-fixed-by-service-account-override",
        (
            "The verbatim example template with a pod_override naming the allowed airflow-worker "
            "service account: allowed"
        ),
        task_id="extract_orders",
        template="dags_in_image_template:verbatim",
        executor_config=override(service_account_name="airflow-worker"),
    ),
    # Resources.
    kex(
        "tiny-resources",
        "pod_override asks for cpu 10m / memory 16Mi: raised to the policy minimum, allowed",
        task_id="ping_warehouse",
        executor_config=override([base(resources=resources("10m", "16Mi"))]),
        warnings=["requests.cpu", "requests.memory"],
    ),
    kex(
        "huge-resources",
        "pod_override asks for cpu 200 / memory 1Ti: clamped to the policy maximum, allowed",
        task_id="rebuild_warehouse",
        executor_config=override([base(resources=resources("200", "1Ti"))]),
        warnings=["limits.cpu", "limits.memory"],
    ),
    kex(
        "mapped-task",
        (
            "A mapped task instance (map_index 3, try 2) keeps Airflow's map_index and try_number "
            "labels: allowed"
        ),
        task_id="load_partition",
        map_index=3,
        try_number=2,
        executor_config=override([base(resources=resources("250m", "512Mi"))]),
    ),
    kex(
        "long-dag-id",
        (
            "A dag_id over 63 characters and a manual run: Airflow hashes the labels, annotations "
            "keep the raw values; allowed"
        ),
        dag_id="customer_360_feature_pipeline_daily_rebuild_with_backfill_support_v2",
        task_id="compute_features.join_sessions",
        run_type=DagRunType.MANUAL,
    ),
    # Security context: mutated, not denied.
    kex(
        "privileged",
        "pod_override makes the base container privileged: overridden to false, allowed",
        task_id="mount_fuse",
        executor_config=override([base(security_context=sc(privileged=True))]),
        warnings=["privileged"],
    ),
    kex(
        "run-as-root",
        (
            "pod_override runs as root (runAsUser 0, runAsNonRoot false, pod and container): "
            "overridden, allowed"
        ),
        task_id="apt_install",
        executor_config=override(
            [base(security_context=sc(run_as_user=0))],
            security_context=psc(run_as_user=0, run_as_group=0, run_as_non_root=False),
        ),
        warnings=["runAsUser", "runAsNonRoot"],
    ),
    kex(
        "capabilities",
        (
            "pod_override adds SYS_ADMIN and NET_ADMIN: removed (only NET_BIND_SERVICE may be "
            "added), "
            "allowed"
        ),
        task_id="tune_network",
        executor_config=override(
            [
                base(
                    security_context=sc(
                        capabilities=k8s.V1Capabilities(add=["SYS_ADMIN", "NET_ADMIN"])
                    )
                )
            ]
        ),
        warnings=["capabilities.add"],
    ),
    kex(
        "allow-privilege-escalation",
        "pod_override sets allowPrivilegeEscalation true: overridden to false, allowed",
        task_id="run_sudo",
        executor_config=override([base(security_context=sc(allow_privilege_escalation=True))]),
        warnings=["allowPrivilegeEscalation"],
    ),
    kex(
        "seccomp-unconfined",
        (
            "pod_override sets the pod's seccompProfile to Unconfined: overridden to "
            "RuntimeDefault, "
            "allowed"
        ),
        task_id="trace_syscalls",
        executor_config=override(
            security_context=psc(seccomp_profile=k8s.V1SeccompProfile(type="Unconfined"))
        ),
        warnings=["seccompProfile"],
    ),
    kex(
        "proc-mount-unmasked",
        (
            "pod_override sets procMount Unmasked on the base container: overridden to Default, "
            "allowed"
        ),
        task_id="nested_container",
        executor_config=override([base(security_context=sc(proc_mount="Unmasked"))]),
        warnings=["procMount"],
    ),
    kex(
        "sysctls",
        (
            "pod_override sets an unsafe sysctl (kernel.msgmax) and a safe one "
            "(net.ipv4.tcp_syncookies): the unsafe one is removed, allowed"
        ),
        task_id="tune_kernel",
        executor_config=override(
            security_context=psc(
                sysctls=[
                    k8s.V1Sysctl(name="kernel.msgmax", value="65536"),
                    k8s.V1Sysctl(name="net.ipv4.tcp_syncookies", value="1"),
                ]
            )
        ),
        warnings=["kernel.msgmax"],
    ),
    kex(
        "selinux-spc-t",
        "pod_override sets SELinux type spc_t (super-privileged container): removed, allowed",
        task_id="selinux_unconfined",
        executor_config=override(
            security_context=psc(se_linux_options=k8s.V1SELinuxOptions(type="spc_t"))
        ),
        warnings=["seLinuxOptions"],
    ),
    # Extra containers.
    kex(
        "init-container",
        (
            "pod_override adds an init container: it gets the same resource and security rules, "
            "allowed"
        ),
        task_id="wait_for_db",
        executor_config=override(
            init_containers=[
                k8s.V1Container(
                    name="wait-for-db",
                    image="busybox:1.36",
                    command=["sh", "-c", "until nc -z postgres 5432; do sleep 2; done"],
                )
            ]
        ),
    ),
    kex(
        "sidecar-container",
        "pod_override adds a log-shipper sidecar next to base: it gets the same rules, allowed",
        task_id="stream_events",
        executor_config=override(
            [
                base(volume_mounts=[mount("shipper-buffer", "/var/log/task")]),
                k8s.V1Container(
                    name="log-shipper",
                    image="fluent/fluent-bit:3.1",
                    volume_mounts=[mount("shipper-buffer", "/var/log/task", read_only=True)],
                ),
            ],
            volumes=[k8s.V1Volume(name="shipper-buffer", empty_dir=k8s.V1EmptyDirVolumeSource())],
        ),
    ),
    # Labels.
    kex(
        "spoofed-platform-labels",
        (
            "pod_override sets the platform's labels (task-pod-webhook/enforced false, "
            "task-pod-webhook/tier gold): denied, both labels named (reservedLabels: deny)"
        ),
        task_id="extract_orders",
        executor_config=override(
            metadata=k8s.V1ObjectMeta(
                labels={"task-pod-webhook/enforced": "false", "task-pod-webhook/tier": "gold"}
            )
        ),
        allowed=False,
        message=SPOOFED_MESSAGE,
    ),
    # Volumes: denied.
    kex(
        "pvc-volume",
        "pod_override mounts a PersistentVolumeClaim: denied",
        task_id="read_shared_data",
        executor_config=override(
            [base(volume_mounts=[mount("data", "/data")])], volumes=[PVC_DATA]
        ),
        allowed=False,
        message=["spec.volumes[2] (name=data)", "persistentVolumeClaim"],
    ),
    kex(
        "hostpath-volume",
        "pod_override mounts the node's docker socket through hostPath: denied",
        task_id="build_image",
        executor_config=override(
            [base(volume_mounts=[mount("docker-sock", "/var/run/docker.sock")])],
            volumes=[
                k8s.V1Volume(
                    name="docker-sock",
                    host_path=k8s.V1HostPathVolumeSource(
                        path="/var/run/docker.sock", type="Socket"
                    ),
                )
            ],
        ),
        allowed=False,
        message=["spec.volumes[2] (name=docker-sock)", "hostPath"],
    ),
    kex(
        "ephemeral-volume",
        "pod_override uses a generic ephemeral volume (it creates a PVC): denied",
        task_id="sort_large_file",
        executor_config=override(
            [base(volume_mounts=[mount("scratch", "/scratch")])],
            volumes=[
                k8s.V1Volume(
                    name="scratch",
                    ephemeral=k8s.V1EphemeralVolumeSource(
                        volume_claim_template=k8s.V1PersistentVolumeClaimTemplate(
                            spec=k8s.V1PersistentVolumeClaimSpec(
                                access_modes=["ReadWriteOnce"],
                                storage_class_name="gp3",
                                resources=k8s.V1VolumeResourceRequirements(
                                    requests={"storage": "50Gi"}
                                ),
                            )
                        )
                    ),
                )
            ],
        ),
        allowed=False,
        message=["spec.volumes[2] (name=scratch)", "ephemeral"],
    ),
    kex(
        "sts-token-audience",
        (
            "pod_override projects a service account token for sts.amazonaws.com (cross-account "
            "role): denied"
        ),
        task_id="copy_to_s3",
        executor_config=override(
            [
                base(
                    env=[
                        k8s.V1EnvVar(
                            name="AWS_ROLE_ARN", value="arn:aws:iam::999999999999:role/other-team"
                        ),
                        k8s.V1EnvVar(
                            name="AWS_WEB_IDENTITY_TOKEN_FILE", value="/var/run/secrets/aws/token"
                        ),
                    ],
                    volume_mounts=[mount("aws-token", "/var/run/secrets/aws", read_only=True)],
                )
            ],
            volumes=[
                k8s.V1Volume(
                    name="aws-token",
                    projected=k8s.V1ProjectedVolumeSource(
                        sources=[
                            k8s.V1VolumeProjection(
                                service_account_token=k8s.V1ServiceAccountTokenProjection(
                                    audience="sts.amazonaws.com",
                                    expiration_seconds=86400,
                                    path="token",
                                )
                            )
                        ]
                    ),
                )
            ],
        ),
        allowed=False,
        message=["spec.volumes[2] (name=aws-token)", "sts.amazonaws.com"],
    ),
    # Service accounts.
    kex(
        "admin-service-account",
        "pod_override runs the worker as service account admin: denied",
        task_id="rotate_secrets",
        executor_config=override(service_account_name="admin"),
        allowed=False,
        message=["spec.serviceAccountName", '"admin"'],
    ),
    # Host access: denied.
    kex(
        "host-network-pid",
        "pod_override sets hostNetwork and hostPID: denied, both named",
        task_id="debug_node",
        executor_config=override(host_network=True, host_pid=True),
        allowed=False,
        message=["spec.hostNetwork", "spec.hostPID"],
    ),
    kex(
        "host-port",
        "pod_override exposes the worker log port as a hostPort: denied",
        task_id="serve_logs",
        executor_config=override(
            [
                base(
                    ports=[
                        k8s.V1ContainerPort(name="worker-logs", container_port=8793, host_port=8793)
                    ]
                )
            ]
        ),
        allowed=False,
        message=["spec.containers[0] (name=base)", "hostPort"],
    ),
    kex(
        "windows-host-process",
        "pod_override sets windowsOptions.hostProcess on the base container: denied",
        task_id="windows_maintenance",
        executor_config=override(
            [
                base(
                    security_context=sc(
                        windows_options=k8s.V1WindowsSecurityContextOptions(host_process=True)
                    )
                )
            ]
        ),
        allowed=False,
        message=["spec.containers[0] (name=base)", "hostProcess"],
    ),
    # KubernetesPodOperator.
    kpo(
        "plain",
        "KubernetesPodOperator pod with no resources or security context: mutated, allowed",
        task_id="train_model",
        name="train-model",
    ),
    kpo(
        "xcom-sidecar",
        (
            "KubernetesPodOperator with do_xcom_push: the airflow-xcom-sidecar's 1m/10Mi requests "
            "are "
            "by design, allowed"
        ),
        task_id="evaluate_model",
        name="evaluate-model",
        do_xcom_push=True,
    ),
    kpo(
        "spoofed-platform-labels",
        (
            "KubernetesPodOperator labels spoof the platform's (task-pod-webhook/enforced false, "
            "tier gold): denied at once, both labels named (rewritten, they would lose the pod)"
        ),
        task_id="train_model",
        name="train-model",
        labels=SPOOFED_LABELS,
        allowed=False,
        message=SPOOFED_MESSAGE,
    ),
    kpo(
        "spoofed-platform-labels-strip",
        (
            "The same labels under reservedLabels: strip: restored/removed with a warning, "
            "allowed; KubernetesPodOperator's selector no longer finds the pod"
        ),
        task_id="train_model",
        name="train-model",
        labels=SPOOFED_LABELS,
        warnings=["task-pod-webhook/enforced", "task-pod-webhook/tier"],
        policy={"labels": {"reservedLabels": "strip"}},
    ),
    kpo(
        "container-resources",
        "KubernetesPodOperator with container_resources inside the bounds: allowed",
        task_id="train_model",
        name="train-model",
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "2", "memory": "8Gi"}, limits={"cpu": "4", "memory": "16Gi"}
        ),
    ),
    kpo(
        "mapped",
        "A mapped KubernetesPodOperator task (map_index 0) carries map_index: allowed",
        task_id="score_shard",
        name="score-shard",
        map_index=0,
    ),
    kpo(
        "pvc-volume",
        "KubernetesPodOperator mounting a PersistentVolumeClaim: denied",
        task_id="train_model",
        name="train-model",
        volumes=[PVC_DATA],
        volume_mounts=[mount("data", "/data")],
        allowed=False,
        message=["spec.volumes[0] (name=data)", "persistentVolumeClaim"],
    ),
    kpo(
        "xcom-pvc-volume",
        (
            "KubernetesPodOperator with do_xcom_push and a PVC: the xcom volume comes first, so "
            "the "
            "PVC is spec.volumes[1]; denied"
        ),
        task_id="evaluate_model",
        name="evaluate-model",
        do_xcom_push=True,
        volumes=[PVC_DATA],
        volume_mounts=[mount("data", "/data")],
        allowed=False,
        message=["spec.volumes[1] (name=data)", "persistentVolumeClaim"],
    ),
    kpo(
        "privileged",
        (
            "KubernetesPodOperator with container_security_context privileged: overridden to "
            "false, "
            "allowed"
        ),
        task_id="train_model",
        name="train-model",
        container_security_context={"privileged": True},
        warnings=["privileged"],
    ),
    kpo(
        "admin-service-account",
        "KubernetesPodOperator with service_account_name admin: denied",
        task_id="train_model",
        name="train-model",
        service_account_name="admin",
        allowed=False,
        message=["spec.serviceAccountName", '"admin"'],
    ),
    kpo(
        "host-network",
        "KubernetesPodOperator with hostnetwork=True: denied",
        task_id="train_model",
        name="train-model",
        hostnetwork=True,
        allowed=False,
        message=["spec.hostNetwork"],
    ),
]


# --- placement (SPEC §16) ---------------------------------------------------------------
# Cases under a platform policy that uses the placement family; each writes the policy
# into its folder as policy.yaml.

PLACEMENT_POLICY = """\
# A platform that runs task pods on a dedicated, tainted node pool in a sandboxed runtime.
placement:
  nodeSelector: {pool.example.com/role: tasks}
  tolerations:
    - {key: pool.example.com/role, operator: Equal, value: tasks, effect: NoSchedule}
  allowedTolerationKeys: [nvidia.com/gpu]
  priorityClassName: airflow-tasks
  runtimeClassName: gvisor
  automountServiceAccountToken: false
"""


def placement(
    name: str, description: str, /, *, allowed: bool = True, message=(), warnings=(), **kwargs
) -> Case:
    """A ``placement-kex-*`` or ``placement-kpo-*`` case under PLACEMENT_POLICY."""
    make = kex if name.startswith("kex-") else kpo
    case = make(
        name[4:], description, allowed=allowed, message=message, warnings=warnings, **kwargs
    )
    case.name = f"placement-{name}"
    case.policy = PLACEMENT_POLICY
    return case


def _required_pool(*values: str) -> k8s.V1Affinity:
    """Required node affinity: a node whose pool label is one of ``values``."""
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                node_selector_terms=[
                    k8s.V1NodeSelectorTerm(
                        match_expressions=[
                            k8s.V1NodeSelectorRequirement(
                                key="pool.example.com/role", operator="In", values=list(values)
                            )
                        ]
                    )
                ]
            )
        )
    )


GPU_TOLERATION = k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")

PLACEMENT_CASES: list[Case] = [
    placement(
        "kpo-scheduling",
        (
            "KubernetesPodOperator with the DAG author's node_selector, a GPU toleration and a "
            "required node affinity that the platform's pool satisfies: the pool label "
            "overridden, the platform's toleration, classes and token setting added, allowed"
        ),
        task_id="train_model",
        name="train-model",
        node_selector={"pool.example.com/role": "gpu", "topology.kubernetes.io/zone": "a"},
        tolerations=[GPU_TOLERATION],
        affinity=_required_pool("gpu", "tasks"),
        warnings=["nodeSelector pool.example.com/role=gpu overridden to tasks"],
    ),
    placement(
        "kpo-affinity-conflict",
        (
            "KubernetesPodOperator whose required node affinity asks for the gpu pool only, "
            "where the platform pins task pods to its own: no node could take it, denied"
        ),
        task_id="train_model",
        name="train-model",
        affinity=_required_pool("gpu"),
        allowed=False,
        message=[
            "nodeSelectorTerms[0].matchExpressions[0]",
            "pool.example.com/role In",
            "pool.example.com/role=tasks",
        ],
    ),
    placement(
        "kpo-control-plane-toleration",
        (
            "KubernetesPodOperator tolerating the control-plane taint, a key the platform does "
            "not allow: denied"
        ),
        task_id="train_model",
        name="train-model",
        tolerations=[
            k8s.V1Toleration(key="node-role.kubernetes.io/control-plane", operator="Exists")
        ],
        allowed=False,
        message=["spec.tolerations[0]", "node-role.kubernetes.io/control-plane"],
    ),
    placement(
        "kex-node-name",
        "KubernetesExecutor pod_override pins the worker to a node with nodeName: denied",
        task_id="extract_orders",
        executor_config=override(node_name="ip-10-0-3-17.ec2.internal"),
        allowed=False,
        message=["spec.nodeName", "ip-10-0-3-17.ec2.internal"],
    ),
    placement(
        "kex-priority-class",
        (
            "KubernetesExecutor pod_override picks priority class high-priority and asks for "
            "the service account token: both overridden (airflow-tasks, no token), allowed"
        ),
        task_id="extract_orders",
        executor_config=override(
            priority_class_name="high-priority", automount_service_account_token=True
        ),
        warnings=[
            "priorityClassName high-priority overridden to airflow-tasks",
            "automountServiceAccountToken true overridden to false",
        ],
    ),
]


# --- writing ------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(document: Any) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000
    )


def _case_document(case: Case) -> dict[str, Any]:
    expect: dict[str, Any] = {"allowed": case.allowed}
    if case.message:
        expect["messageContains"] = case.message
    if case.warnings:
        expect["warningsContain"] = case.warnings
    document: dict[str, Any] = {
        "description": case.description,
        "source": "airflow",
        "namespace": NAMESPACE,
    }
    if case.policy is not None:
        document["policy"] = "policy.yaml"
    return {**document, "expect": expect}


def _check_pins() -> None:
    wanted = {}
    for raw in (HERE / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            wanted[name.strip()] = version.strip()
    for name, version in wanted.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "nothing"
        if installed != version:
            print(f"warning: {name} {installed} is installed, requirements.txt pins {version}")


def main() -> int:
    _check_pins()
    header = (
        f"# Generated by tools/airflow_fixtures/generate.py with apache-airflow {AIRFLOW_VERSION} "
        f"and\n"
        f"# apache-airflow-providers-cncf-kubernetes {PROVIDER_VERSION}. Do not edit: regenerate.\n"
    )
    cases = [*CASES, *PLACEMENT_CASES]
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate case names")
    for case in cases:
        pod = case.build(case.name)
        text = _dump(pod)
        if str(_WORK) in text:
            raise SystemExit(f"{case.name}: a temporary path leaked into the pod")
        folder = FIXTURES / case.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pod.yaml").write_text(header + text)
        (folder / "case.yaml").write_text(_dump(_case_document(case)))
        if case.policy is not None:
            policy = case.policy if isinstance(case.policy, str) else _dump(case.policy)
            (folder / "policy.yaml").write_text(policy)
        if case.name in KPO_REQUESTS:
            (folder / KPO_REQUESTS_FILE).write_text(
                "# The requests KubernetesPodOperator's client sends to find its pod and to mark\n"
                "# it already_checked, as recorded by tools/airflow_fixtures/generate.py.\n"
                + _dump(KPO_REQUESTS[case.name])
            )
        print(f"{case.name}: {'allowed' if case.allowed else 'denied'}")
    generated = set(names)
    for folder in sorted(FIXTURES.iterdir()):
        if (
            folder.is_dir()
            and folder.name.startswith(("kex-", "kpo-", "placement-"))
            and folder.name not in generated
        ):
            print(f"warning: {folder.name} is not generated any more; remove it by hand")
    print(f"{len(cases)} cases from apache-airflow {AIRFLOW_VERSION}, provider {PROVIDER_VERSION}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(_WORK, ignore_errors=True)

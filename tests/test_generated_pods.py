"""Pods generated with hypothesis: every admitted pod is hardened, and mutation converges.

For any task pod a user could write (security contexts, capabilities,
resources in many spellings, volumes, sysctls, node selectors, tolerations,
node affinity, classes, the mounted token...), under the default policy and one
using every placement setting, the webhook either
denies it or patches it into a pod that (1) the Kubernetes schema accepts,
(2) passes the Pod Security Standards restricted level, (3) yields no patch
when reviewed again (idempotence) and (4) passes /validate.
"""

from __future__ import annotations

import jsonpatch
import kubernetes_validate
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.podkit import TASK_LABELS, policy, run
from tests.pss_restricted import check_restricted
from webhook.policy import default_policy

maybe = st.none() | st.just(True) | st.just(False)
user = st.none() | st.sampled_from([0, 1, 1000, 50000])
seccomp = (
    st.none()
    | st.fixed_dictionaries({"type": st.sampled_from(["Unconfined", "RuntimeDefault"])})
    | st.just({"type": "Localhost", "localhostProfile": "profiles/audit.json"})
)
apparmor = st.none() | st.fixed_dictionaries(
    {"type": st.sampled_from(["Unconfined", "RuntimeDefault"])}
)
selinux = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["spc_t", "container_t", "unconfined_t", ""]),
        "user": st.sampled_from(["root", "system_u"]),
        "role": st.sampled_from(["sysadm_r"]),
        "level": st.just("s0:c1,c2"),
    },
)
capability = st.sampled_from(
    ["SYS_ADMIN", "NET_ADMIN", "NET_BIND_SERVICE", "CHOWN", "ALL", "NET_RAW"]
)


def _drop_none(d):
    return {k: v for k, v in d.items() if v is not None}


container_sc = st.builds(
    lambda priv, esc, nonroot, uid, sc, aa, se, add, drop, proc, ro: _drop_none(
        {
            "privileged": priv,
            "allowPrivilegeEscalation": esc,
            "runAsNonRoot": nonroot,
            "runAsUser": uid,
            "seccompProfile": sc,
            "appArmorProfile": aa,
            "seLinuxOptions": se,
            "capabilities": _drop_none({"add": add, "drop": drop}) or None,
            "procMount": proc,
            "readOnlyRootFilesystem": ro,
        }
    ),
    maybe,
    maybe,
    maybe,
    user,
    seccomp,
    apparmor,
    selinux,
    st.none() | st.lists(capability, max_size=3, unique=True),
    st.none() | st.lists(capability, max_size=2, unique=True),
    st.none() | st.sampled_from(["Default", "Unmasked"]),
    maybe,
)
quantity = st.sampled_from(["1m", "10m", "100m", "0.5", "1", "2", "1500m", "64", "1e3", "2e2"])
memory = st.sampled_from(["16Mi", "128Mi", "1Gi", "1.5Gi", "100Gi", "1e9", "512M", "1Ti"])
resources = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "requests": st.fixed_dictionaries({}, optional={"cpu": quantity, "memory": memory}),
        "limits": st.fixed_dictionaries({}, optional={"cpu": quantity, "memory": memory}),
    },
)


def _container(name, sc, res, port):
    c = {"name": name, "image": "apache/airflow:3.1.0"}
    if sc is not None:
        c["securityContext"] = sc
    if res is not None:
        c["resources"] = res
    if port:
        c["ports"] = [{"containerPort": 8080}]
    return c


containers = st.lists(
    st.tuples(st.none() | container_sc, resources, st.booleans()), min_size=1, max_size=4
).map(lambda items: [_container(f"c{i}", *item) for i, item in enumerate(items)])
sysctls = st.none() | st.lists(
    st.sampled_from(["kernel.msgmax", "net.ipv4.tcp_syncookies", "net.core.somaxconn"]),
    max_size=3,
    unique=True,
).map(lambda names: [{"name": n, "value": "1"} for n in names] or None)
pod_sc = st.builds(
    lambda nonroot, uid, sc, aa, se, ctl: _drop_none(
        {
            "runAsNonRoot": nonroot,
            "runAsUser": uid,
            "seccompProfile": sc,
            "appArmorProfile": aa,
            "seLinuxOptions": se,
            "sysctls": ctl,
        }
    ),
    maybe,
    user,
    seccomp,
    apparmor,
    selinux,
    sysctls,
)
volumes = st.lists(
    st.sampled_from(
        [
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "dags", "persistentVolumeClaim": {"claimName": "dags"}},
            {"name": "host", "hostPath": {"path": "/var/log"}},
        ]
    ),
    max_size=3,
    unique_by=lambda v: v["name"],
)

node_selector = st.none() | st.dictionaries(
    st.sampled_from(["pool.example.com/role", "zone", "sandbox"]),
    st.sampled_from(["tasks", "gpu", "a", ""]),
    max_size=3,
)
toleration = st.sampled_from(
    [
        {"operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "tasks", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "tasks", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
)
node_requirement = st.builds(
    lambda key, operator, values: _drop_none(
        {
            "key": key,
            "operator": operator,
            "values": values if operator not in ("Exists", "DoesNotExist") else None,
        }
    ),
    st.sampled_from(["pool.example.com/role", "zone", "cores"]),
    st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(["tasks", "gpu", "a"]), min_size=1, max_size=2, unique=True),
)
node_affinity = st.none() | st.lists(
    st.lists(node_requirement, min_size=1, max_size=2).map(lambda e: {"matchExpressions": e}),
    min_size=1,
    max_size=2,
).map(
    lambda terms: {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
)
TOKEN_VOLUME = {
    "name": "kube-api-access-x7k2p",
    "projected": {
        "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]
    },
}
TOKEN_MOUNT = {
    "name": "kube-api-access-x7k2p",
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
}


def _placement(draw, spec):
    """The fields the placement family reads, each drawn or left out."""
    for field, strategy in (
        ("nodeSelector", node_selector),
        ("tolerations", st.none() | st.lists(toleration, max_size=3, unique_by=str)),
        ("affinity", node_affinity),
        ("nodeName", st.none() | st.none() | st.just("node-1")),
        ("priorityClassName", st.none() | st.sampled_from(["", "high", "airflow-tasks"])),
        ("runtimeClassName", st.none() | st.sampled_from(["runc", "gvisor"])),
        ("automountServiceAccountToken", maybe),
    ):
        value = draw(strategy)
        if value is not None:
            spec[field] = value
    if draw(st.booleans()):  # the token the ServiceAccount plugin mounts before webhooks run
        spec["volumes"] = [*spec.get("volumes", []), TOKEN_VOLUME]
        for c in spec["containers"]:
            c["volumeMounts"] = [TOKEN_MOUNT]


@st.composite
def task_pods(draw):
    main = draw(containers)
    init = draw(
        st.none() | containers.map(lambda cs: [{**c, "name": "init-" + c["name"]} for c in cs])
    )
    spec = {"containers": main, "restartPolicy": "Never"}
    if init:
        spec["initContainers"] = init
    sc = draw(st.none() | pod_sc)
    if sc is not None:
        spec["securityContext"] = sc
    vols = draw(volumes)
    if vols:
        spec["volumes"] = vols
    account = draw(st.none() | st.sampled_from(["default", "airflow-worker", "admin"]))
    if account:
        spec["serviceAccountName"] = account
    if draw(st.booleans()):
        spec["hostNetwork"] = draw(st.booleans())
    _placement(draw, spec)
    labels = dict(TASK_LABELS)
    if draw(st.booleans()):
        labels["task-pod-webhook/enforced"] = draw(st.sampled_from(["true", "false"]))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "generated", "namespace": "airflow", "labels": labels},
        "spec": spec,
    }


SCHEMA = kubernetes_validate.latest_version()
# The default policy, and one that uses every placement setting.
POLICIES = [
    default_policy(),
    policy(
        placement={
            "nodeSelector": {"pool.example.com/role": "tasks", "sandbox": "gvisor"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "tasks", "effect": "NoSchedule"}
            ],
            "allowedTolerationKeys": ["dedicated"],
            "priorityClassName": "airflow-tasks",
            "runtimeClassName": "gvisor",
            "automountServiceAccountToken": False,
        }
    ),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_pods(), st.sampled_from(POLICIES))
def test_admitted_pods_are_restricted_valid_and_converge(pod, pol):
    decision = run(pod, pol)
    response = decision.response
    event("denied" if not response["allowed"] else "admitted")
    if not response["allowed"]:
        assert response["status"]["code"] == 403
        assert decision.violations
        return
    mutated = jsonpatch.apply_patch(pod, decision.patch)
    assert check_restricted(mutated) == []
    kubernetes_validate.validate(mutated, SCHEMA, strict=True)
    assert mutated["metadata"]["labels"]["task-pod-webhook/enforced"] == "true"
    again = run(mutated, pol)
    assert again.patch == []
    assert run(mutated, pol, endpoint="validate").response["allowed"] is True

"""Tests for the independent Pod Security Standards (Restricted, latest) checker.

Table-driven: a fully hardened golden pod must pass, and each case mutates a copy of
it. A failing case must fail exactly the expected check IDs (so each test can fail,
and a variant cannot pass by tripping some other check); a boundary case must pass.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from tests.pss_restricted import (
    BASELINE_CHECKS,
    RESTRICTED_CHECKS,
    SAFE_SYSCTLS,
    Violation,
    baseline_violations,
    check_baseline,
    check_restricted,
    restricted_violations,
)

Pod = dict[str, Any]
Mutation = Callable[[Pod], None]

KINDS = ("containers", "initContainers", "ephemeralContainers")

# Written out here, not imported, so that the tests pin the lists (check_sysctls.go and
# check_seLinuxOptions.go at policy v1.37).
EXPECTED_SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
)
EXPECTED_SELINUX_TYPES = (
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
)


def hardened_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 50000,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "procMount": "Default",
        "appArmorProfile": {"type": "RuntimeDefault"},
        "seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"},
        "windowsOptions": {"hostProcess": False},
    }


def golden_pod() -> Pod:
    """A fully hardened pod using every container kind and every volume type."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "task",
            "namespace": "airflow",
            "annotations": {
                "container.apparmor.security.beta.kubernetes.io/base": "runtime/default",
                "container.apparmor.security.beta.kubernetes.io/init": "localhost/task",
            },
        },
        "spec": {
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 50000,
                "runAsGroup": 0,
                "fsGroup": 50000,
                "seccompProfile": {"type": "RuntimeDefault"},
                "appArmorProfile": {"type": "RuntimeDefault"},
                "seLinuxOptions": {"type": "container_t"},
                "windowsOptions": {"hostProcess": False},
                "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
            },
            "containers": [
                {
                    "name": "base",
                    "image": "apache/airflow:2.10.0",
                    "ports": [{"containerPort": 8080, "hostPort": 0}],
                    "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                    "readinessProbe": {"tcpSocket": {"port": 8080, "host": ""}},
                    "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
                    "securityContext": hardened_security_context(),
                }
            ],
            "initContainers": [
                {
                    "name": "init",
                    "image": "busybox:1.36",
                    "ports": [{"containerPort": 9000}],
                    "securityContext": hardened_security_context(),
                }
            ],
            "ephemeralContainers": [
                {
                    "name": "debug",
                    "image": "busybox:1.36",
                    "securityContext": hardened_security_context(),
                }
            ],
            "volumes": [
                {"name": "cm", "configMap": {"name": "cfg"}},
                {"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io"}},
                {"name": "dapi", "downwardAPI": {"items": []}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "pvc", "persistentVolumeClaim": {"claimName": "logs"}},
                {"name": "token", "projected": {"sources": []}},
                {"name": "sec", "secret": {"secretName": "s"}},
            ],
        },
    }


# ------------------------------------------------------------------ mutation helpers


def _walk(pod: Pod, path: tuple[str | int, ...]) -> Any:
    node: Any = pod
    for key in path:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    return node


def put(*path: str | int, value: object) -> Mutation:
    """Set ``path`` to ``value``, creating intermediate objects."""

    def mutate(pod: Pod) -> None:
        _walk(pod, path[:-1])[path[-1]] = copy.deepcopy(value)

    return mutate


def drop(*path: str | int) -> Mutation:
    """Delete ``path`` if present."""

    def mutate(pod: Pod) -> None:
        parent = _walk(pod, path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            del parent[path[-1]]

    return mutate


def every(*mutations: Mutation) -> Mutation:
    def mutate(pod: Pod) -> None:
        for m in mutations:
            m(pod)

    return mutate


def ctr(kind: str, *rest: str | int) -> tuple[str | int, ...]:
    return ("spec", kind, 0, *rest)


def sc(kind: str, *rest: str | int) -> tuple[str | int, ...]:
    return ctr(kind, "securityContext", *rest)


POD_SC: tuple[str | int, ...] = ("spec", "securityContext")


def on_all_kinds(field: str, value: object) -> Mutation:
    return every(*(put(*sc(kind, field), value=value) for kind in KINDS))


def drop_on_all_kinds(field: str) -> Mutation:
    return every(*(drop(*sc(kind, field)) for kind in KINDS))


WINDOWS: Mutation = every(
    put("spec", "os", value={"name": "windows"}),
    drop(*POD_SC, "seccompProfile"),
    drop(*POD_SC, "seLinuxOptions"),
    drop(*POD_SC, "appArmorProfile"),
    drop(*POD_SC, "sysctls"),
    *(
        drop(*sc(kind, field))
        for kind in KINDS
        for field in (
            "allowPrivilegeEscalation",
            "capabilities",
            "seccompProfile",
            "seLinuxOptions",
            "appArmorProfile",
            "procMount",
            "privileged",
            "readOnlyRootFilesystem",
        )
    ),
)


class Case(NamedTuple):
    id: str
    mutate: Mutation
    expected: frozenset[str]


def fails(case_id: str, mutate: Mutation, *checks: str) -> Case:
    assert checks, "a failing case names the checks it must fail"
    return Case(case_id, mutate, frozenset(checks))


def passes(case_id: str, mutate: Mutation) -> Case:
    return Case(case_id, mutate, frozenset())


# ----------------------------------------------------------------------- the tables

RESTRICTED_CASES: list[Case] = [
    passes("golden", every()),
    # HostProcess
    fails(
        "hostProcess pod",
        put(*POD_SC, "windowsOptions", "hostProcess", value=True),
        "windowsHostProcess",
    ),
    *(
        fails(
            f"hostProcess {k}",
            put(*sc(k, "windowsOptions", "hostProcess"), value=True),
            "windowsHostProcess",
        )
        for k in KINDS
    ),
    passes(
        "hostProcess unset",
        every(drop(*POD_SC, "windowsOptions"), drop_on_all_kinds("windowsOptions")),
    ),
    # Host namespaces
    *(
        fails(f"{field} true", put("spec", field, value=True), "hostNamespaces")
        for field in ("hostNetwork", "hostPID", "hostIPC")
    ),
    passes(
        "host namespaces unset",
        every(drop("spec", "hostNetwork"), drop("spec", "hostPID"), drop("spec", "hostIPC")),
    ),
    # Privileged containers
    *(fails(f"privileged {k}", put(*sc(k, "privileged"), value=True), "privileged") for k in KINDS),
    passes("privileged unset", drop_on_all_kinds("privileged")),
    # Host ports
    *(
        fails(
            f"hostPort {k}",
            put(*ctr(k, "ports"), value=[{"containerPort": 80, "hostPort": 8080}]),
            "hostPorts",
        )
        for k in KINDS
    ),
    passes(
        "hostPort 0", put(*ctr("containers", "ports"), value=[{"containerPort": 80, "hostPort": 0}])
    ),
    passes("hostPort unset", put(*ctr("containers", "ports"), value=[{"containerPort": 80}])),
    # Host probes / lifecycle hooks (v1.34+)
    *(
        fails(
            f"{probe}.{action}.host {k}",
            put(*ctr(k, probe), value={action: {"port": 8080, "host": "10.0.0.1"}}),
            "hostProbesAndHostLifecycle",
        )
        for k in ("containers", "initContainers")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
        for action in ("httpGet", "tcpSocket")
    ),
    *(
        fails(
            f"lifecycle.{hook}.{action}.host {k}",
            put(
                *ctr(k, "lifecycle"),
                value={hook: {action: {"port": 80, "host": "169.254.169.254"}}},
            ),
            "hostProbesAndHostLifecycle",
        )
        for k in KINDS
        for hook in ("postStart", "preStop")
        for action in ("httpGet", "tcpSocket")
    ),
    passes(
        "probe host empty",
        put(*ctr("containers", "startupProbe"), value={"httpGet": {"port": 80, "host": ""}}),
    ),
    # AppArmor
    fails(
        "appArmor pod Unconfined",
        put(*POD_SC, "appArmorProfile", value={"type": "Unconfined"}),
        "appArmorProfile",
    ),
    *(
        fails(
            f"appArmor {k} Unconfined",
            put(*sc(k, "appArmorProfile"), value={"type": "Unconfined"}),
            "appArmorProfile",
        )
        for k in KINDS
    ),
    fails(
        "appArmor annotation unconfined",
        put(
            "metadata",
            "annotations",
            "container.apparmor.security.beta.kubernetes.io/base",
            value="unconfined",
        ),
        "appArmorProfile",
    ),
    passes(
        "appArmor Localhost",
        on_all_kinds("appArmorProfile", {"type": "Localhost", "localhostProfile": "k8s-task"}),
    ),
    passes(
        "appArmor unset",
        every(drop(*POD_SC, "appArmorProfile"), drop_on_all_kinds("appArmorProfile")),
    ),
    # SELinux
    fails(
        "seLinux pod type spc_t",
        put(*POD_SC, "seLinuxOptions", value={"type": "spc_t"}),
        "seLinuxOptions",
    ),
    *(
        fails(
            f"seLinux {k} type spc_t",
            put(*sc(k, "seLinuxOptions"), value={"type": "spc_t"}),
            "seLinuxOptions",
        )
        for k in KINDS
    ),
    fails(
        "seLinux pod user",
        put(*POD_SC, "seLinuxOptions", value={"user": "system_u"}),
        "seLinuxOptions",
    ),
    *(
        fails(
            f"seLinux {k} role",
            put(*sc(k, "seLinuxOptions"), value={"role": "system_r"}),
            "seLinuxOptions",
        )
        for k in KINDS
    ),
    *(
        passes(f"seLinux type {t or 'empty'}", on_all_kinds("seLinuxOptions", {"type": t}))
        for t in EXPECTED_SELINUX_TYPES
    ),
    fails(
        "seLinux type unconfined_t",
        on_all_kinds("seLinuxOptions", {"type": "unconfined_t"}),
        "seLinuxOptions",
    ),
    passes("seLinux level only", put(*POD_SC, "seLinuxOptions", value={"level": "s0:c1,c2"})),
    # /proc mount type: Restricted requires Default even in a user namespace (v1.35+)
    *(
        fails(
            f"procMount {k} Unmasked",
            put(*sc(k, "procMount"), value="Unmasked"),
            "procMount_restricted",
        )
        for k in KINDS
    ),
    fails(
        "procMount Unmasked with hostUsers false",
        every(
            put("spec", "hostUsers", value=False),
            put(*sc("containers", "procMount"), value="Unmasked"),
        ),
        "procMount_restricted",
    ),
    passes("procMount unset", drop_on_all_kinds("procMount")),
    # Sysctls
    fails(
        "sysctl kernel.msgmax",
        put(*POD_SC, "sysctls", value=[{"name": "kernel.msgmax", "value": "65536"}]),
        "sysctls",
    ),
    fails(
        "sysctl net.core.somaxconn after a safe one",
        put(
            *POD_SC,
            "sysctls",
            value=[
                {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                {"name": "net.core.somaxconn", "value": "1024"},
            ],
        ),
        "sysctls",
    ),
    *(
        passes(f"sysctl {name}", put(*POD_SC, "sysctls", value=[{"name": name, "value": "1"}]))
        for name in EXPECTED_SAFE_SYSCTLS
    ),
    passes("sysctls unset", drop(*POD_SC, "sysctls")),
    # Volume types (restricted)
    *(
        fails(
            f"volume {vtype}",
            put("spec", "volumes", 0, value={"name": "v", vtype: body}),
            "restrictedVolumes",
        )
        for vtype, body in (
            ("hostPath", {"path": "/var/run/docker.sock"}),
            ("nfs", {"server": "nfs", "path": "/"}),
            ("gitRepo", {"repository": "https://example.invalid/r.git"}),
            ("awsElasticBlockStore", {"volumeID": "vol-1"}),
            ("gcePersistentDisk", {"pdName": "pd"}),
            ("iscsi", {"targetPortal": "t", "iqn": "i", "lun": 0}),
            ("cephfs", {"monitors": ["m"]}),
            ("flexVolume", {"driver": "d"}),
        )
    ),
    fails(
        "volume with no source", put("spec", "volumes", 0, value={"name": "v"}), "restrictedVolumes"
    ),
    fails(
        "volume setting an allowed and a forbidden source",
        put("spec", "volumes", 0, value={"name": "v", "emptyDir": {}, "hostPath": {"path": "/"}}),
        "restrictedVolumes",
    ),
    passes(
        "volume image (allowed by PodSecurity admission since v1.33)",
        put(
            "spec",
            "volumes",
            0,
            value={"name": "v", "image": {"reference": "registry.example/data:1"}},
        ),
    ),
    passes("no volumes", drop("spec", "volumes")),
    # Privilege escalation
    *(
        fails(
            f"allowPrivilegeEscalation unset {k}",
            drop(*sc(k, "allowPrivilegeEscalation")),
            "allowPrivilegeEscalation",
        )
        for k in KINDS
    ),
    *(
        fails(
            f"allowPrivilegeEscalation true {k}",
            put(*sc(k, "allowPrivilegeEscalation"), value=True),
            "allowPrivilegeEscalation",
        )
        for k in KINDS
    ),
    fails(
        "allowPrivilegeEscalation missing securityContext",
        put(*ctr("containers", "securityContext"), value=None),
        "allowPrivilegeEscalation",
        "capabilities_restricted",
    ),
    # Running as non-root
    fails("runAsNonRoot pod false", put(*POD_SC, "runAsNonRoot", value=False), "runAsNonRoot"),
    *(
        fails(f"runAsNonRoot {k} false", put(*sc(k, "runAsNonRoot"), value=False), "runAsNonRoot")
        for k in KINDS
    ),
    *(
        fails(
            f"runAsNonRoot pod unset, {k} unset",
            every(drop(*POD_SC, "runAsNonRoot"), drop(*sc(k, "runAsNonRoot"))),
            "runAsNonRoot",
        )
        for k in KINDS
    ),
    passes("runAsNonRoot only on all containers", drop(*POD_SC, "runAsNonRoot")),
    passes("runAsNonRoot only at pod level", drop_on_all_kinds("runAsNonRoot")),
    passes(
        "runAsNonRoot unset everywhere with hostUsers false",
        every(
            put("spec", "hostUsers", value=False),
            drop(*POD_SC, "runAsNonRoot"),
            drop_on_all_kinds("runAsNonRoot"),
        ),
    ),
    # Running as non-root user
    fails("runAsUser pod 0", put(*POD_SC, "runAsUser", value=0), "runAsUser"),
    *(fails(f"runAsUser {k} 0", put(*sc(k, "runAsUser"), value=0), "runAsUser") for k in KINDS),
    passes("runAsUser unset", every(drop(*POD_SC, "runAsUser"), drop_on_all_kinds("runAsUser"))),
    passes("runAsUser 1", every(put(*POD_SC, "runAsUser", value=1), on_all_kinds("runAsUser", 1))),
    passes(
        "runAsUser 0 with hostUsers false",
        every(
            put("spec", "hostUsers", value=False),
            put(*POD_SC, "runAsUser", value=0),
            on_all_kinds("runAsUser", 0),
        ),
    ),
    # Seccomp
    fails(
        "seccomp pod Unconfined",
        put(*POD_SC, "seccompProfile", value={"type": "Unconfined"}),
        "seccompProfile_restricted",
    ),
    *(
        fails(
            f"seccomp {k} Unconfined",
            put(*sc(k, "seccompProfile"), value={"type": "Unconfined"}),
            "seccompProfile_restricted",
        )
        for k in KINDS
    ),
    *(
        fails(
            f"seccomp pod unset, {k} unset",
            every(drop(*POD_SC, "seccompProfile"), drop(*sc(k, "seccompProfile"))),
            "seccompProfile_restricted",
        )
        for k in KINDS
    ),
    fails(
        "seccomp pod profile without type",
        put(*POD_SC, "seccompProfile", value={}),
        "seccompProfile_restricted",
    ),
    passes("seccomp only on all containers", drop(*POD_SC, "seccompProfile")),
    passes("seccomp only at pod level", drop_on_all_kinds("seccompProfile")),
    passes(
        "seccomp Localhost",
        every(
            put(
                *POD_SC, "seccompProfile", value={"type": "Localhost", "localhostProfile": "p.json"}
            ),
            on_all_kinds("seccompProfile", {"type": "Localhost", "localhostProfile": "p.json"}),
        ),
    ),
    # Capabilities (restricted)
    *(
        fails(f"capabilities unset {k}", drop(*sc(k, "capabilities")), "capabilities_restricted")
        for k in KINDS
    ),
    *(
        fails(
            f"capabilities drop NET_RAW only {k}",
            put(*sc(k, "capabilities"), value={"drop": ["NET_RAW"]}),
            "capabilities_restricted",
        )
        for k in KINDS
    ),
    fails(
        "capabilities drop lowercase all",
        put(*sc("containers", "capabilities"), value={"drop": ["all"]}),
        "capabilities_restricted",
    ),
    *(
        fails(
            f"capabilities add SYS_ADMIN {k}",
            put(*sc(k, "capabilities"), value={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
            "capabilities_restricted",
        )
        for k in KINDS
    ),
    fails(
        "capabilities add CHOWN (baseline default set, still not restricted)",
        put(*sc("containers", "capabilities"), value={"drop": ["ALL"], "add": ["CHOWN"]}),
        "capabilities_restricted",
    ),
    passes(
        "capabilities add NET_BIND_SERVICE",
        on_all_kinds("capabilities", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
    ),
    passes(
        "capabilities drop ALL among others",
        on_all_kinds("capabilities", {"drop": ["NET_RAW", "ALL"]}),
    ),
    # Windows pods: privilege escalation, seccomp and capabilities are Linux-only
    passes("windows pod", WINDOWS),
    fails(
        "windows pod still needs runAsNonRoot",
        every(WINDOWS, drop(*POD_SC, "runAsNonRoot"), drop(*sc("containers", "runAsNonRoot"))),
        "runAsNonRoot",
    ),
    fails(
        "windows pod hostProcess",
        every(WINDOWS, put(*sc("containers", "windowsOptions"), value={"hostProcess": True})),
        "windowsHostProcess",
    ),
    fails(
        "windows pod still gets baseline seccomp",
        every(WINDOWS, put(*sc("containers", "seccompProfile"), value={"type": "Unconfined"})),
        "seccompProfile_baseline",
    ),
    fails(
        "windows pod still gets baseline capabilities",
        every(WINDOWS, put(*sc("initContainers", "capabilities"), value={"add": ["SYS_ADMIN"]})),
        "capabilities_baseline",
    ),
    # Several problems at once are all reported
    fails(
        "many violations",
        every(
            put("spec", "hostNetwork", value=True),
            put(*sc("containers", "privileged"), value=True),
            drop(*sc("initContainers", "allowPrivilegeEscalation")),
            put("spec", "volumes", 0, value={"name": "v", "hostPath": {"path": "/"}}),
        ),
        "hostNamespaces",
        "privileged",
        "allowPrivilegeEscalation",
        "restrictedVolumes",
    ),
]

BASELINE_CASES: list[Case] = [
    passes("golden", every()),
    passes(
        "restricted-only settings unset",
        every(drop_on_all_kinds("capabilities"), drop_on_all_kinds("allowPrivilegeEscalation")),
    ),
    fails(
        "hostPath volume",
        put("spec", "volumes", 0, value={"name": "v", "hostPath": {"path": "/"}}),
        "hostPathVolumes",
    ),
    passes(
        "nfs volume",
        put("spec", "volumes", 0, value={"name": "v", "nfs": {"server": "s", "path": "/"}}),
    ),
    *(
        fails(
            f"capabilities add SYS_ADMIN {k}",
            put(*sc(k, "capabilities"), value={"add": ["SYS_ADMIN"]}),
            "capabilities_baseline",
        )
        for k in KINDS
    ),
    fails(
        "capabilities add NET_RAW",
        put(*sc("containers", "capabilities"), value={"add": ["NET_RAW"]}),
        "capabilities_baseline",
    ),
    passes(
        "capabilities add the default set",
        on_all_kinds(
            "capabilities", {"add": ["AUDIT_WRITE", "CHOWN", "KILL", "SETUID", "SYS_CHROOT"]}
        ),
    ),
    fails(
        "seccomp pod Unconfined",
        put(*POD_SC, "seccompProfile", value={"type": "Unconfined"}),
        "seccompProfile_baseline",
    ),
    *(
        fails(
            f"seccomp {k} Unconfined",
            put(*sc(k, "seccompProfile"), value={"type": "Unconfined"}),
            "seccompProfile_baseline",
        )
        for k in KINDS
    ),
    passes(
        "seccomp unset", every(drop(*POD_SC, "seccompProfile"), drop_on_all_kinds("seccompProfile"))
    ),
    *(
        fails(f"procMount {k} Unmasked", put(*sc(k, "procMount"), value="Unmasked"), "procMount")
        for k in KINDS
    ),
    passes(
        "procMount Unmasked with hostUsers false (v1.35+)",
        every(put("spec", "hostUsers", value=False), on_all_kinds("procMount", "Unmasked")),
    ),
    passes("runAsUser 0 is not a baseline control", put(*POD_SC, "runAsUser", value=0)),
]

ALL_RESTRICTED_IDS = set(BASELINE_CHECKS) | set(RESTRICTED_CHECKS)
# Superseded in Restricted for Linux pods; exercised through check_baseline.
SUPERSEDED_IDS = {"hostPathVolumes", "procMount"}


def _run(case: Case, checker: Callable[[Pod], list[Violation]]) -> tuple[Pod, list[Violation]]:
    pod = golden_pod()
    case.mutate(pod)
    return pod, checker(pod)


# --------------------------------------------------------------------------- tests


def test_golden_pod_passes() -> None:
    assert check_restricted(golden_pod()) == []
    assert check_baseline(golden_pod()) == []


@pytest.mark.parametrize("case", RESTRICTED_CASES, ids=lambda c: c.id)
def test_restricted(case: Case) -> None:
    pod, violations = _run(case, restricted_violations)
    assert {v.check for v in violations} == case.expected, check_restricted(pod)
    messages = check_restricted(pod)
    assert len(messages) == len(violations)
    for check in case.expected:
        assert any(m.startswith(f"{check} ") for m in messages), (check, messages)


@pytest.mark.parametrize("case", BASELINE_CASES, ids=lambda c: c.id)
def test_baseline(case: Case) -> None:
    pod, violations = _run(case, baseline_violations)
    assert {v.check for v in violations} == case.expected, check_baseline(pod)
    messages = check_baseline(pod)
    for check in case.expected:
        assert any(m.startswith(f"{check} ") for m in messages), (check, messages)


def test_every_check_has_a_failing_case() -> None:
    failed_restricted = {c for case in RESTRICTED_CASES for c in case.expected}
    failed_baseline = {c for case in BASELINE_CASES for c in case.expected}
    assert failed_restricted == ALL_RESTRICTED_IDS - SUPERSEDED_IDS
    assert failed_baseline >= SUPERSEDED_IDS


def test_every_check_has_a_docstring() -> None:
    checks = [*BASELINE_CHECKS.values(), *(fn for fn, _ in RESTRICTED_CHECKS.values())]
    for fn in checks:
        doc = " ".join((fn.__doc__ or "").split())
        assert "Restricted field" in doc, fn.__name__
        assert "allowed" in doc.lower(), fn.__name__


def test_message_format() -> None:
    pod = golden_pod()
    drop(*sc("containers", "allowPrivilegeEscalation"))(pod)
    assert check_restricted(pod) == ["allowPrivilegeEscalation != false (containers[0] base)"]


def test_message_names_container_kind_and_index() -> None:
    pod = golden_pod()
    pod["spec"]["initContainers"].append(copy.deepcopy(pod["spec"]["initContainers"][0]))
    pod["spec"]["initContainers"][1]["name"] = "second"
    pod["spec"]["initContainers"][1]["securityContext"]["runAsUser"] = 0
    assert check_restricted(pod) == ["runAsUser == 0 (initContainers[1] second)"]


def test_sysctl_list_is_the_v1_37_safe_set() -> None:
    assert frozenset(EXPECTED_SAFE_SYSCTLS) == SAFE_SYSCTLS


@pytest.mark.parametrize(
    "pod",
    [
        {},
        {"spec": None},
        {"spec": {"containers": None, "securityContext": None}},
        {"metadata": {"annotations": None}},
    ],
)
def test_tolerates_sparse_pods(pod: Pod) -> None:
    assert check_restricted(pod) == []


def test_null_security_contexts_fail_cleanly() -> None:
    pod = golden_pod()
    pod["spec"]["securityContext"] = None
    for kind in KINDS:
        pod["spec"][kind][0]["securityContext"] = None
    checks = {v.check for v in restricted_violations(pod)}
    assert checks == {
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile_restricted",
        "capabilities_restricted",
    }

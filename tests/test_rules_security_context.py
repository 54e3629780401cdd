"""security context: hardened overrides, host access denied, ephemeral containers only."""

from __future__ import annotations

import jsonpatch
import pytest

from tests.podkit import container, pod, policy
from webhook.admission.patch import build_patch
from webhook.policy import default_policy
from webhook.rules.base import REMOVE, Facts
from webhook.rules.security_context import (
    check_ephemeral_security_context,
    check_host_access,
    check_security_context,
)


def _mutated(subject, pol=None, facts=None):
    outcome = check_security_context(subject, pol or default_policy(), facts or Facts())
    return jsonpatch.apply_patch(subject, build_patch(subject, outcome.changes)), outcome


def _csc(subject, kind="containers", index=0):
    return subject["spec"][kind][index].get("securityContext", {})


def test_bare_pod_gets_the_restricted_baseline_silently():
    mutated, outcome = _mutated(pod())
    assert mutated["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 50000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert _csc(mutated) == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert outcome.notes == ()


CONTAINER_CASES = [
    (
        "privileged",
        {"privileged": True},
        "privileged",
        False,
        "privileged true overridden to false",
    ),
    (
        "escalation",
        {"allowPrivilegeEscalation": True},
        "allowPrivilegeEscalation",
        False,
        "allowPrivilegeEscalation true overridden to false",
    ),
    ("root user", {"runAsUser": 0}, "runAsUser", 50000, "runAsUser 0 overridden to 50000"),
    (
        "runAsNonRoot false",
        {"runAsNonRoot": False},
        "runAsNonRoot",
        True,
        "runAsNonRoot false overridden to true",
    ),
    (
        "procMount",
        {"procMount": "Unmasked"},
        "procMount",
        "Default",
        "procMount Unmasked overridden",
    ),
    (
        "seccomp",
        {"seccompProfile": {"type": "Unconfined"}},
        "seccompProfile",
        {"type": "RuntimeDefault"},
        "seccompProfile Unconfined overridden to RuntimeDefault",
    ),
    (
        "apparmor",
        {"appArmorProfile": {"type": "Unconfined"}},
        "appArmorProfile",
        {"type": "RuntimeDefault"},
        "appArmorProfile Unconfined overridden",
    ),
    (
        "selinux type",
        {"seLinuxOptions": {"type": "spc_t", "level": "s0"}},
        "seLinuxOptions",
        {"level": "s0"},
        "seLinuxOptions.type spc_t removed",
    ),
    (
        "capabilities",
        {"capabilities": {"add": ["SYS_ADMIN", "NET_BIND_SERVICE"], "drop": ["NET_RAW"]}},
        "capabilities",
        {"add": ["NET_BIND_SERVICE"], "drop": ["NET_RAW", "ALL"]},
        "capabilities.add SYS_ADMIN removed",
    ),
]


@pytest.mark.parametrize("kind", ["containers", "initContainers", "ephemeralContainers"])
@pytest.mark.parametrize(
    ("given", "field", "wanted", "note"),
    [c[1:] for c in CONTAINER_CASES],
    ids=[c[0] for c in CONTAINER_CASES],
)
def test_container_overrides(kind, given, field, wanted, note):
    subject = pod(container("main"))
    subject["spec"].setdefault(kind, []).append(container("target", securityContext=dict(given)))
    index = len(subject["spec"][kind]) - 1
    mutated, outcome = _mutated(subject)
    assert _csc(mutated, kind, index)[field] == wanted
    assert any(note in n for n in outcome.notes), outcome.notes


POD_CASES = [
    ("root", {"runAsUser": 0}, "runAsUser", 50000),
    ("non-root false", {"runAsNonRoot": False}, "runAsNonRoot", True),
    (
        "seccomp unconfined",
        {"seccompProfile": {"type": "Unconfined"}},
        "seccompProfile",
        {"type": "RuntimeDefault"},
    ),
    (
        "seccomp localhost kept",
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
        "seccompProfile",
        {"type": "Localhost", "localhostProfile": "p.json"},
    ),
    ("own non-root user kept", {"runAsUser": 1000}, "runAsUser", 1000),
    (
        "unsafe sysctl removed, safe kept",
        {
            "sysctls": [
                {"name": "kernel.msgmax", "value": "1"},
                {"name": "net.ipv4.tcp_syncookies", "value": "1"},
            ]
        },
        "sysctls",
        [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
    ),
    (
        "selinux user and role removed",
        {"seLinuxOptions": {"user": "root", "role": "sysadm_r", "type": "container_t"}},
        "seLinuxOptions",
        {"type": "container_t"},
    ),
]


@pytest.mark.parametrize(
    ("given", "field", "wanted"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES]
)
def test_pod_overrides(given, field, wanted):
    mutated, _ = _mutated(pod(securityContext=dict(given)))
    assert mutated["spec"]["securityContext"][field] == wanted


def test_all_unsafe_sysctls_removes_the_field():
    outcome = check_security_context(
        pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
        default_policy(),
        Facts(),
    )
    assert {c.path: c.value for c in outcome.changes}[
        ("spec", "securityContext", "sysctls")
    ] is REMOVE


def test_legacy_apparmor_annotation():
    key = "container.apparmor.security.beta.kubernetes.io/base"
    mutated, _ = _mutated(pod(annotations={key: "unconfined"}))
    assert mutated["metadata"]["annotations"][key] == "runtime/default"
    kept, _ = _mutated(pod(annotations={key: "localhost/custom"}))
    assert kept["metadata"]["annotations"][key] == "localhost/custom"


def test_read_only_root_filesystem_when_the_policy_asks():
    pol = policy(securityContext={"readOnlyRootFilesystem": True})
    mutated, _ = _mutated(pod(container(securityContext={"readOnlyRootFilesystem": False})), pol)
    assert _csc(mutated)["readOnlyRootFilesystem"] is True
    untouched, _ = _mutated(pod())
    assert "readOnlyRootFilesystem" not in _csc(untouched)


HOST_CASES = [
    ("hostNetwork", {"hostNetwork": True}, "spec.hostNetwork"),
    ("hostPID", {"hostPID": True}, "spec.hostPID"),
    ("hostIPC", {"hostIPC": True}, "spec.hostIPC"),
    (
        "pod hostProcess",
        {"securityContext": {"windowsOptions": {"hostProcess": True}}},
        "spec.securityContext",
    ),
]


@pytest.mark.parametrize(
    ("spec", "where"), [c[1:] for c in HOST_CASES], ids=[c[0] for c in HOST_CASES]
)
def test_host_access_is_denied(spec, where):
    outcome = check_host_access(pod(**spec), default_policy(), Facts())
    assert [v.where for v in outcome.violations] == [where]


def test_host_ports_and_container_host_process_are_denied_but_container_ports_are_fine():
    subject = pod(
        container(
            ports=[
                {"containerPort": 8080},
                {"containerPort": 80, "hostPort": 80},
                {"containerPort": 81, "hostPort": 0},
            ],
            securityContext={"windowsOptions": {"hostProcess": True}},
        )
    )
    outcome = check_host_access(subject, default_policy(), Facts())
    assert [str(v) for v in outcome.violations] == [
        "spec.containers[0] (name=base): securityContext.windowsOptions.hostProcess is not allowed",
        "spec.containers[0] (name=base): ports[1].hostPort 80 is not allowed; "
        "host ports are not supported for task pods",
    ]
    assert not check_host_access(pod(hostNetwork=False), default_policy(), Facts()).violations


def test_ephemeral_update_touches_only_new_ephemeral_containers():
    subject = pod(
        container(securityContext={"privileged": True}),
        ephemeralContainers=[
            container("old-debugger", securityContext={"privileged": True}),
            container("debugger", securityContext={"privileged": True}),
        ],
    )
    outcome = check_ephemeral_security_context(
        subject, default_policy(), Facts(existing_ephemeral=frozenset({"old-debugger"}))
    )
    touched = {c.path[:3] for c in outcome.changes}
    assert touched == {("spec", "ephemeralContainers", 1)}


def test_probe_and_lifecycle_hosts_are_denied():
    subject = pod(
        container(
            livenessProbe={"httpGet": {"path": "/", "port": 80, "host": "10.0.0.1"}},
            readinessProbe={"tcpSocket": {"port": 80}},
            lifecycle={"preStop": {"tcpSocket": {"port": 1, "host": "metadata"}}},
        )
    )
    outcome = check_host_access(subject, default_policy(), Facts())
    assert [v.what for v in outcome.violations] == [
        "livenessProbe.httpGet.host '10.0.0.1' is not allowed",
        "lifecycle.preStop.tcpSocket.host 'metadata' is not allowed",
    ]

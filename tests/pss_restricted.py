"""Independent checker for the Kubernetes Pod Security Standards, Restricted level.

Implements the **latest** version of the standard as of Kubernetes v1.37 (v1.37.0
released 2026-08-26): what the built-in PodSecurity admission controller enforces for
``pod-security.kubernetes.io/enforce: restricted`` at ``enforce-version: latest``.
The Restricted level includes every Baseline control, so both are implemented here.

This module was written from the published standard, check by check, and deliberately
not from this project's webhook code, so that it can serve as an independent oracle.

Sources:

* "Pod Security Standards",
  https://kubernetes.io/docs/concepts/security/pod-security-standards/
  (kubernetes/website, content/en/docs/concepts/security/pod-security-standards.md),
  including its "Pod OS field" section (Linux-only Restricted controls).
* "User Namespaces", section "Integration with Pod security admission checks",
  https://kubernetes.io/docs/concepts/workloads/pods/user-namespaces/
* The PodSecurity admission check files, kubernetes/kubernetes
  staging/src/k8s.io/pod-security-admission/policy/check_*.go (published as
  k8s.io/pod-security-admission). Each opens with a spec comment listing the
  restricted fields and allowed values. Where the docs page lags the code, the
  code is followed:

  - sysctls: the page stops at the v1.29 additions; check_sysctls.go also allows
    net.ipv4.tcp_rmem / net.ipv4.tcp_wmem (policy v1.32, kubernetes PR 127489) and
    net.ipv4.tcp_slow_start_after_idle / net.ipv4.tcp_notsent_lowat (policy v1.37,
    kubernetes PR 138389, CHANGELOG-1.37).
  - volume types: the page lists eight; check_restrictedVolumes.go also allows
    ``image`` volumes since v1.33 (kubernetes PR 130394; docs fix tracked in
    kubernetes/website issue 55370).
  - /proc mount type: from policy v1.35 Baseline allows any procMount for
    ``hostUsers: false`` pods, but Restricted still requires Default
    (check_procMount_baseline.go, check_procMount_restricted.go).

Composition follows PodSecurity admission: Restricted = Baseline checks, minus the
Baseline checks a Restricted check supersedes, plus the Restricted checks. The one
deviation: for ``spec.os.name: windows`` pods, whose Linux-only Restricted controls
(privilege escalation, seccomp, capabilities) are exempt, the Baseline seccomp and
capabilities controls are still applied, as the standard's tables say. (The API
server rejects those fields on Windows pods, so this only makes the checker stricter
on pods that cannot exist.)

Each failure is reported as ``"<check> <detail> (<where>)"``, where ``<check>`` is the
PodSecurity check ID, e.g. ``"allowPrivilegeEscalation != false (containers[0] base)"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

POLICY_VERSION = "v1.37"

WINDOWS = "windows"

BASELINE_ADD_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)

# check_seLinuxOptions.go: selinuxAllowedTypes1_0 plus container_engine_t (policy v1.31).
SELINUX_ALLOWED_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)

# check_sysctls.go: the union of the v1.0, v1.27, v1.29, v1.32 and v1.37 sets.
SAFE_SYSCTLS = frozenset(
    {
        # v1.0
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        # v1.27
        "net.ipv4.ip_local_reserved_ports",
        # v1.29
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        # v1.32
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        # v1.37
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    }
)

SECCOMP_ALLOWED_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

# check_restrictedVolumes.go (``image`` since v1.33; see the module docstring).
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HANDLERS = ("postStart", "preStop")


class Violation(NamedTuple):
    """One failed check: the PodSecurity check ID, what is wrong, and where."""

    check: str
    detail: str
    where: str

    def __str__(self) -> str:
        return f"{self.check} {self.detail} ({self.where})"


CheckFn = Callable[[Mapping[str, Any]], list[Violation]]


# --------------------------------------------------------------------------- helpers


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _seq(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _show(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _spec(pod: Mapping[str, Any]) -> dict[str, Any]:
    return _obj(pod.get("spec"))


def _pod_sc(pod: Mapping[str, Any]) -> dict[str, Any]:
    return _obj(_spec(pod).get("securityContext"))


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container: containers, initContainers and ephemeralContainers."""
    spec = _spec(pod)
    for kind in CONTAINER_KINDS:
        for index, item in enumerate(_seq(spec.get(kind))):
            container = _obj(item)
            yield f"{kind}[{index}] {container.get('name', '')}", container


def _sc(container: Mapping[str, Any]) -> dict[str, Any]:
    return _obj(container.get("securityContext"))


def _truthy_set(value: object) -> bool:
    """A field whose allowed values are undefined/nil and false: anything else fails."""
    return value is not None and value is not False


def is_windows(pod: Mapping[str, Any]) -> bool:
    """``spec.os.name`` is ``windows``."""
    return _obj(_spec(pod).get("os")).get("name") == WINDOWS


def uses_user_namespace(pod: Mapping[str, Any]) -> bool:
    """``spec.hostUsers`` is explicitly false."""
    return _spec(pod).get("hostUsers") is False


def _both_levels(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod securityContext, then every container securityContext."""
    yield "pod", _pod_sc(pod)
    for where, container in _containers(pod):
        yield where, _sc(container)


# ------------------------------------------------------------------- baseline checks


def check_windows_host_process(pod: Mapping[str, Any]) -> list[Violation]:
    """HostProcess (baseline).

    "Windows Pods offer the ability to run HostProcess containers which enables
    privileged access to the Windows host machine. Privileged access to the host is
    disallowed in the Baseline policy." Restricted fields:
    spec.securityContext.windowsOptions.hostProcess and the same field on
    containers, initContainers and ephemeralContainers. Allowed: undefined/nil, false.
    """
    found = []
    for where, sc in _both_levels(pod):
        value = _obj(sc.get("windowsOptions")).get("hostProcess")
        if _truthy_set(value):
            found.append(Violation("windowsHostProcess", f"hostProcess={_show(value)}", where))
    return found


def check_host_namespaces(pod: Mapping[str, Any]) -> list[Violation]:
    """Host Namespaces (baseline).

    "Sharing the host namespaces must be disallowed." Restricted fields:
    spec.hostNetwork, spec.hostPID, spec.hostIPC. Allowed: undefined/nil, false.
    """
    spec = _spec(pod)
    return [
        Violation("hostNamespaces", f"{field}={_show(spec.get(field))}", "pod")
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if _truthy_set(spec.get(field))
    ]


def check_privileged(pod: Mapping[str, Any]) -> list[Violation]:
    """Privileged Containers (baseline).

    "Privileged Pods disable most security mechanisms and must be disallowed."
    Restricted fields: spec.containers[*].securityContext.privileged (and
    initContainers, ephemeralContainers). Allowed: undefined/nil, false.
    """
    found = []
    for where, container in _containers(pod):
        value = _sc(container).get("privileged")
        if _truthy_set(value):
            found.append(Violation("privileged", f"privileged={_show(value)}", where))
    return found


def check_capabilities_baseline(pod: Mapping[str, Any]) -> list[Violation]:
    """Capabilities (baseline).

    "Adding additional capabilities beyond those listed below must be disallowed."
    Restricted fields: spec.containers[*].securityContext.capabilities.add (and
    initContainers, ephemeralContainers). Allowed: undefined/nil, AUDIT_WRITE, CHOWN,
    DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID,
    SETPCAP, SETUID, SYS_CHROOT.
    """
    found = []
    for where, container in _containers(pod):
        for cap in _seq(_obj(_sc(container).get("capabilities")).get("add")):
            if cap not in BASELINE_ADD_CAPABILITIES:
                found.append(Violation("capabilities_baseline", f"adds {_show(cap)}", where))
    return found


def check_host_path_volumes(pod: Mapping[str, Any]) -> list[Violation]:
    """HostPath Volumes (baseline).

    "HostPath volumes must be forbidden." Restricted field: spec.volumes[*].hostPath.
    Allowed: undefined/nil.
    """
    found = []
    for index, item in enumerate(_seq(_spec(pod).get("volumes"))):
        volume = _obj(item)
        if volume.get("hostPath") is not None:
            where = f"volumes[{index}] {volume.get('name', '')}"
            found.append(Violation("hostPathVolumes", "hostPath volume", where))
    return found


def check_host_ports(pod: Mapping[str, Any]) -> list[Violation]:
    """Host Ports (baseline).

    "HostPorts should be disallowed entirely (recommended) or restricted to a known
    list." Restricted fields: spec.containers[*].ports[*].hostPort (and
    initContainers, ephemeralContainers). Allowed: undefined/nil, 0. (A known list is
    "not supported by the built-in Pod Security Admission controller".)
    """
    found = []
    for where, container in _containers(pod):
        for index, item in enumerate(_seq(container.get("ports"))):
            value = _obj(item).get("hostPort")
            if value is not None and not (type(value) is int and value == 0):
                found.append(
                    Violation("hostPorts", f"hostPort={_show(value)}", f"{where} ports[{index}]")
                )
    return found


def check_host_probes_and_lifecycle(pod: Mapping[str, Any]) -> list[Violation]:
    """Host Probes / Lifecycle Hooks (baseline, v1.34+).

    "The Host field in probes and lifecycle hooks must be disallowed."
    Restricted fields:
    spec.containers[*].{livenessProbe,readinessProbe,startupProbe}.{httpGet,tcpSocket}.host
    and spec.containers[*].lifecycle.{postStart,preStop}.{httpGet,tcpSocket}.host (and
    initContainers; PodSecurity admission visits ephemeralContainers too).
    Allowed: undefined/nil, "".
    """
    found = []
    for where, container in _containers(pod):
        handlers = [(probe, _obj(container.get(probe))) for probe in PROBES]
        lifecycle = _obj(container.get("lifecycle"))
        handlers += [
            (f"lifecycle.{hook}", _obj(lifecycle.get(hook))) for hook in LIFECYCLE_HANDLERS
        ]
        for path, handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                host = _obj(handler.get(action)).get("host")
                if host is not None and host != "":
                    detail = f"{path}.{action}.host={_show(host)}"
                    found.append(Violation("hostProbesAndHostLifecycle", detail, where))
    return found


def check_apparmor(pod: Mapping[str, Any]) -> list[Violation]:
    """AppArmor (baseline).

    "On supported hosts, the RuntimeDefault AppArmor profile is applied by default.
    The baseline policy should prevent overriding or disabling the default AppArmor
    profile, or restrict overrides to an allowed set of profiles." Restricted fields:
    spec.securityContext.appArmorProfile.type and the same field on containers,
    initContainers, ephemeralContainers; allowed: undefined/nil, RuntimeDefault,
    Localhost. And metadata.annotations["container.apparmor.security.beta.kubernetes.io/*"];
    allowed: undefined/nil, runtime/default, localhost/* (check_appArmorProfile.go
    also accepts an empty value).
    """
    found = []
    for where, sc in _both_levels(pod):
        profile = sc.get("appArmorProfile")
        if profile is not None:
            kind = _obj(profile).get("type")
            if kind not in APPARMOR_ALLOWED_TYPES:
                found.append(Violation("appArmorProfile", f"type={_show(kind)}", where))
    annotations = _obj(_obj(pod.get("metadata")).get("annotations"))
    for key, value in sorted(annotations.items()):
        if not str(key).startswith(APPARMOR_ANNOTATION_PREFIX):
            continue
        allowed = isinstance(value, str) and (
            value in ("", "runtime/default") or value.startswith("localhost/")
        )
        if not allowed:
            detail = f"annotation {key}={_show(value)}"
            found.append(Violation("appArmorProfile", detail, "metadata.annotations"))
    return found


def check_selinux(pod: Mapping[str, Any]) -> list[Violation]:
    """SELinux (baseline).

    "Setting the SELinux type is restricted, and setting a custom SELinux user or
    role option is forbidden." Restricted fields: spec.securityContext.seLinuxOptions.type
    and the same field on containers, initContainers, ephemeralContainers; allowed:
    undefined/"", container_t, container_init_t, container_kvm_t, container_engine_t
    (since Kubernetes 1.31). Restricted fields: seLinuxOptions.user and
    seLinuxOptions.role at the same levels; allowed: undefined/"".
    """
    found = []
    for where, sc in _both_levels(pod):
        options = sc.get("seLinuxOptions")
        if options is None:
            continue
        opts = _obj(options)
        kind = opts.get("type")
        if (kind if kind is not None else "") not in SELINUX_ALLOWED_TYPES:
            found.append(Violation("seLinuxOptions", f"type={_show(kind)}", where))
        for field in ("user", "role"):
            if opts.get(field) not in (None, ""):
                found.append(
                    Violation("seLinuxOptions", f"{field}={_show(opts.get(field))}", where)
                )
    return found


def _proc_mount(pod: Mapping[str, Any], check: str) -> list[Violation]:
    found = []
    for where, container in _containers(pod):
        value = _sc(container).get("procMount")
        if value is not None and value != "Default":
            found.append(Violation(check, f"procMount={_show(value)}", where))
    return found


def check_proc_mount_baseline(pod: Mapping[str, Any]) -> list[Violation]:
    """/proc Mount Type (baseline).

    "The default /proc masks are set up to reduce attack surface, and should be
    required." Restricted fields: spec.containers[*].securityContext.procMount (and
    initContainers, ephemeralContainers). Allowed: undefined/nil, Default. From
    policy v1.35, any value is allowed at Baseline for pods in a user namespace
    (spec.hostUsers: false), per check_procMount_baseline.go and the user
    namespaces page.
    """
    if uses_user_namespace(pod):
        return []
    return _proc_mount(pod, "procMount")


def check_seccomp_baseline(pod: Mapping[str, Any]) -> list[Violation]:
    """Seccomp (baseline).

    "Seccomp profile must not be explicitly set to Unconfined." Restricted fields:
    spec.securityContext.seccompProfile.type and the same field on containers,
    initContainers, ephemeralContainers. Allowed: undefined/nil, RuntimeDefault,
    Localhost.
    """
    found = []
    for where, sc in _both_levels(pod):
        profile = sc.get("seccompProfile")
        if profile is not None:
            kind = _obj(profile).get("type")
            if kind not in SECCOMP_ALLOWED_TYPES:
                found.append(Violation("seccompProfile_baseline", f"type={_show(kind)}", where))
    return found


def check_sysctls(pod: Mapping[str, Any]) -> list[Violation]:
    """Sysctls (baseline).

    "Sysctls can disable security mechanisms or affect all containers on a host, and
    should be disallowed except for an allowed 'safe' subset. A sysctl is considered
    safe if it is namespaced in the container or the Pod, and it is isolated from
    other Pods or processes on the same Node." Restricted field:
    spec.securityContext.sysctls[*].name. Allowed: undefined/nil and the safe set
    (SAFE_SYSCTLS, from check_sysctls.go at policy v1.37).
    """
    found = []
    for index, item in enumerate(_seq(_pod_sc(pod).get("sysctls"))):
        name = _obj(item).get("name")
        if name not in SAFE_SYSCTLS:
            where = f"pod securityContext.sysctls[{index}]"
            found.append(Violation("sysctls", f"forbidden sysctl {_show(name)}", where))
    return found


# ----------------------------------------------------------------- restricted checks


def check_restricted_volumes(pod: Mapping[str, Any]) -> list[Violation]:
    """Volume Types (restricted).

    "The Restricted policy only permits the following volume types." Restricted
    field: spec.volumes[*]. "Every item in the spec.volumes[*] list must set one of
    the following fields to a non-null value": configMap, csi, downwardAPI, emptyDir,
    ephemeral, persistentVolumeClaim, projected, secret; and image, allowed by
    check_restrictedVolumes.go since v1.33. A volume that also sets any other source
    is reported too (the API allows one source per volume).
    """
    found = []
    for index, item in enumerate(_seq(_spec(pod).get("volumes"))):
        volume = _obj(item)
        sources = sorted(k for k, v in volume.items() if k != "name" and v is not None)
        where = f"volumes[{index}] {volume.get('name', '')}"
        others = [s for s in sources if s not in RESTRICTED_VOLUME_TYPES]
        if others:
            detail = "volume type " + ", ".join(_show(s) for s in others)
            found.append(Violation("restrictedVolumes", detail, where))
        elif not sources:
            found.append(Violation("restrictedVolumes", "volume type unknown (none set)", where))
    return found


def check_allow_privilege_escalation(pod: Mapping[str, Any]) -> list[Violation]:
    """Privilege Escalation (restricted, v1.8+).

    "Privilege escalation (such as via set-user-ID or set-group-ID file mode) should
    not be allowed. This is Linux only policy in v1.25+ (spec.os.name != windows)."
    Restricted fields: spec.containers[*].securityContext.allowPrivilegeEscalation
    (and initContainers, ephemeralContainers). Allowed: false.
    """
    if is_windows(pod):
        return []
    return [
        Violation("allowPrivilegeEscalation", "!= false", where)
        for where, container in _containers(pod)
        if _sc(container).get("allowPrivilegeEscalation") is not False
    ]


def check_run_as_non_root(pod: Mapping[str, Any]) -> list[Violation]:
    """Running as Non-root (restricted).

    "Containers must be required to run as non-root users." Restricted fields:
    spec.securityContext.runAsNonRoot and the same field on containers,
    initContainers, ephemeralContainers. Allowed: true. "The container fields may be
    undefined/nil if the pod-level spec.securityContext.runAsNonRoot is set to true."
    Not checked for pods that use user namespaces (spec.hostUsers: false; policy
    v1.35+, user namespaces page).
    """
    if uses_user_namespace(pod):
        return []
    found = []
    pod_value = _pod_sc(pod).get("runAsNonRoot")
    if pod_value is not None and pod_value is not True:
        found.append(Violation("runAsNonRoot", "!= true", "pod"))
    for where, container in _containers(pod):
        value = _sc(container).get("runAsNonRoot")
        if value is None:
            if pod_value is not True:
                found.append(Violation("runAsNonRoot", "unset and pod-level != true", where))
        elif value is not True:
            found.append(Violation("runAsNonRoot", "!= true", where))
    return found


def check_run_as_user(pod: Mapping[str, Any]) -> list[Violation]:
    """Running as Non-root user (restricted, v1.23+).

    "Containers must not set runAsUser to 0." Restricted fields:
    spec.securityContext.runAsUser and the same field on containers, initContainers,
    ephemeralContainers. Allowed: any non-zero value, undefined/null. Not checked for
    pods that use user namespaces (spec.hostUsers: false; policy v1.35+).
    """
    if uses_user_namespace(pod):
        return []
    found = []
    for where, sc in _both_levels(pod):
        value = sc.get("runAsUser")
        if value is None:
            continue
        if type(value) is not int:
            found.append(Violation("runAsUser", f"not an integer: {_show(value)}", where))
        elif value == 0:
            found.append(Violation("runAsUser", "== 0", where))
    return found


def check_seccomp_restricted(pod: Mapping[str, Any]) -> list[Violation]:
    """Seccomp (restricted, v1.19+).

    "Seccomp profile must be explicitly set to one of the allowed values. Both the
    Unconfined profile and the absence of a profile are prohibited. This is Linux
    only policy in v1.25+ (spec.os.name != windows)." Restricted fields:
    spec.securityContext.seccompProfile.type and the same field on containers,
    initContainers, ephemeralContainers. Allowed: RuntimeDefault, Localhost. "The
    container fields may be undefined/nil if the pod-level
    spec.securityContext.seccompProfile.type field is set appropriately. Conversely,
    the pod-level field may be undefined/nil if all container-level fields are set."
    """
    if is_windows(pod):
        return []
    found = []
    pod_profile = _pod_sc(pod).get("seccompProfile")
    pod_ok = False
    if pod_profile is not None:
        kind = _obj(pod_profile).get("type")
        pod_ok = kind in SECCOMP_ALLOWED_TYPES
        if not pod_ok:
            found.append(Violation("seccompProfile_restricted", f"type={_show(kind)}", "pod"))
    for where, container in _containers(pod):
        profile = _sc(container).get("seccompProfile")
        if profile is None:
            if not pod_ok:
                detail = "unset and pod-level not RuntimeDefault/Localhost"
                found.append(Violation("seccompProfile_restricted", detail, where))
            continue
        kind = _obj(profile).get("type")
        if kind not in SECCOMP_ALLOWED_TYPES:
            found.append(Violation("seccompProfile_restricted", f"type={_show(kind)}", where))
    return found


def check_capabilities_restricted(pod: Mapping[str, Any]) -> list[Violation]:
    """Capabilities (restricted, v1.22+).

    "Containers must drop ALL capabilities, and are only permitted to add back the
    NET_BIND_SERVICE capability. This is Linux only policy in v1.25+
    (.spec.os.name != "windows")." Restricted fields:
    spec.containers[*].securityContext.capabilities.drop (and initContainers,
    ephemeralContainers); allowed: any list of capabilities that includes ALL.
    Restricted fields: ...capabilities.add; allowed: undefined/nil, NET_BIND_SERVICE.
    Values are compared exactly, as check_capabilities_restricted.go does.
    """
    if is_windows(pod):
        return []
    found = []
    for where, container in _containers(pod):
        caps = _obj(_sc(container).get("capabilities"))
        if "ALL" not in _seq(caps.get("drop")):
            found.append(Violation("capabilities_restricted", 'drop lacks "ALL"', where))
        for cap in _seq(caps.get("add")):
            if cap != "NET_BIND_SERVICE":
                found.append(Violation("capabilities_restricted", f"adds {_show(cap)}", where))
    return found


def check_proc_mount_restricted(pod: Mapping[str, Any]) -> list[Violation]:
    """/proc Mount Type (restricted, v1.35+).

    "The default /proc masks are set up to reduce attack surface, and should be
    required by the restricted profile." Restricted fields:
    spec.containers[*].securityContext.procMount (and initContainers,
    ephemeralContainers). Allowed: undefined/null, Default, whatever spec.hostUsers
    is. Supersedes the Baseline procMount check (check_procMount_restricted.go).
    """
    return _proc_mount(pod, "procMount_restricted")


# ------------------------------------------------------------------------ registries

BASELINE_CHECKS: dict[str, CheckFn] = {
    "windowsHostProcess": check_windows_host_process,
    "hostNamespaces": check_host_namespaces,
    "privileged": check_privileged,
    "capabilities_baseline": check_capabilities_baseline,
    "hostPathVolumes": check_host_path_volumes,
    "hostPorts": check_host_ports,
    "hostProbesAndHostLifecycle": check_host_probes_and_lifecycle,
    "appArmorProfile": check_apparmor,
    "seLinuxOptions": check_selinux,
    "procMount": check_proc_mount_baseline,
    "seccompProfile_baseline": check_seccomp_baseline,
    "sysctls": check_sysctls,
}

# Restricted check ID -> (check, Baseline check IDs it supersedes).
RESTRICTED_CHECKS: dict[str, tuple[CheckFn, tuple[str, ...]]] = {
    "restrictedVolumes": (check_restricted_volumes, ("hostPathVolumes",)),
    "allowPrivilegeEscalation": (check_allow_privilege_escalation, ()),
    "runAsNonRoot": (check_run_as_non_root, ()),
    "runAsUser": (check_run_as_user, ()),
    "seccompProfile_restricted": (check_seccomp_restricted, ("seccompProfile_baseline",)),
    "capabilities_restricted": (check_capabilities_restricted, ("capabilities_baseline",)),
    "procMount_restricted": (check_proc_mount_restricted, ("procMount",)),
}

# Restricted checks that the standard makes Linux-only; for Windows pods the Baseline
# checks they supersede still apply (see the module docstring).
LINUX_ONLY_RESTRICTED = frozenset(
    {"allowPrivilegeEscalation", "seccompProfile_restricted", "capabilities_restricted"}
)


def baseline_violations(pod: Mapping[str, Any]) -> list[Violation]:
    """Every Baseline violation of ``pod`` (a v1 Pod in its JSON form)."""
    return [v for check in BASELINE_CHECKS.values() for v in check(pod)]


def restricted_violations(pod: Mapping[str, Any]) -> list[Violation]:
    """Every Restricted violation of ``pod`` (a v1 Pod in its JSON form)."""
    windows = is_windows(pod)
    superseded = {
        base
        for check_id, (_, overrides) in RESTRICTED_CHECKS.items()
        if not (windows and check_id in LINUX_ONLY_RESTRICTED)
        for base in overrides
    }
    found = [
        v
        for check_id, check in BASELINE_CHECKS.items()
        if check_id not in superseded
        for v in check(pod)
    ]
    found += [v for check, _ in RESTRICTED_CHECKS.values() for v in check(pod)]
    return found


def check_baseline(pod: Mapping[str, Any]) -> list[str]:
    """One short string per failed Baseline check; empty when the pod passes."""
    return [str(v) for v in baseline_violations(pod)]


def check_restricted(pod: Mapping[str, Any]) -> list[str]:
    """One short string per failed Restricted check; empty when the pod passes."""
    return [str(v) for v in restricted_violations(pod)]

"""Security context (SPEC §4.3): every task pod passes PSS *restricted* after mutation.

Overridden (a warning for each explicit insecure value; fields that are merely
unset are filled in silently):

pod ``spec.securityContext``
  ``runAsNonRoot`` → true; ``runAsUser`` unset or 0 → policy ``runAsUser``;
  ``seccompProfile`` unset or Unconfined → RuntimeDefault (Localhost kept);
  ``sysctls`` outside the PSS safe set removed; ``appArmorProfile`` Unconfined →
  RuntimeDefault; ``seLinuxOptions`` type outside the allowed set, user and
  role removed. Legacy AppArmor annotations
  ``container.apparmor.security.beta.kubernetes.io/<c>`` other than
  ``runtime/default`` / ``localhost/*`` → ``runtime/default``.
every container, init container and ephemeral container ``securityContext``
  ``allowPrivilegeEscalation`` → false; ``privileged`` true → false;
  ``capabilities.drop`` gets ALL; ``capabilities.add`` keeps only the policy's
  allowed list; ``procMount`` → Default; ``runAsNonRoot`` false → true;
  ``runAsUser`` 0 → policy ``runAsUser``; seccomp / AppArmor Unconfined →
  RuntimeDefault; SELinux as for the pod; ``readOnlyRootFilesystem`` → true
  when the policy asks for it.

Host access can't be made safe by a patch and is a violation (rule
``host-access``): ``hostNetwork``, ``hostPID``, ``hostIPC``, container
``ports[].hostPort`` other than 0, ``windowsOptions.hostProcess`` true, and a
``host`` on a probe's or lifecycle hook's ``httpGet`` / ``tcpSocket`` (PSS
baseline "Host Probes / Lifecycle Hooks", v1.34: the kubelet would connect to
another host on the pod's behalf).

On an ephemeral-containers update only the new ephemeral containers are
looked at: everything else in the pod is immutable by then.
"""

from __future__ import annotations

from typing import Any

from webhook.policy import Policy
from webhook.rules.base import (
    EMPTY,
    REMOVE,
    Change,
    ContainerRef,
    Facts,
    Outcome,
    Path,
    Pod,
    Violation,
    grouped,
    visit_containers,
)

# PSS baseline "Sysctls" (latest): the namespaced sysctls that are safe.
SAFE_SYSCTLS = frozenset(
    {
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
    }
)
# PSS baseline "SELinux": allowed types; user and role must be unset.
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_RUNTIME_DEFAULT = {"type": "RuntimeDefault"}


class _Edits:
    """Collects changes and override notes for one securityContext object."""

    def __init__(self, base: Path, who: str) -> None:
        self.base = base
        self.who = who
        self.changes: list[Change] = []
        self.notes: list[str] = []

    def set(self, field: str, value: Any, *, was: Any = None, note: bool = True) -> None:
        self.changes.append(Change((*self.base, *field.split(".")), value))
        if note:
            shown = "removed" if value is REMOVE else f"overridden to {_show(value)}"
            self.notes.append(f"{self.who}: securityContext.{field} {_show(was)} {shown}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "type" in value:
        return str(value["type"])
    return str(value)


def _common(sc: dict[str, Any], edits: _Edits, policy: Policy, pod_level: bool) -> None:
    non_root = sc.get("runAsNonRoot")
    if pod_level and non_root is not True:
        edits.set("runAsNonRoot", True, was=non_root, note=non_root is False)
    elif non_root is False:
        edits.set("runAsNonRoot", True, was=False)
    user = sc.get("runAsUser")
    if user == 0 or (pod_level and user is None):
        edits.set("runAsUser", policy.security_context.run_as_user, was=user, note=user == 0)
    seccomp = sc.get("seccompProfile") or {}
    kind = seccomp.get("type")
    if kind == "Unconfined" or (pod_level and kind not in ("RuntimeDefault", "Localhost")):
        edits.set("seccompProfile", dict(_RUNTIME_DEFAULT), was=kind, note=kind is not None)
    apparmor = sc.get("appArmorProfile") or {}
    if apparmor.get("type") == "Unconfined":
        edits.set("appArmorProfile", dict(_RUNTIME_DEFAULT), was="Unconfined")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES:
        edits.set("seLinuxOptions.type", REMOVE, was=selinux["type"])
    for field in ("user", "role"):
        if selinux.get(field):
            edits.set(f"seLinuxOptions.{field}", REMOVE, was=selinux[field])


def _pod_level(pod: Pod, policy: Policy, changes: list[Change], notes: list[str]) -> None:
    spec = pod.get("spec") or {}
    sc = spec.get("securityContext") or {}
    edits = _Edits(("spec", "securityContext"), "pod")
    _common(sc, edits, policy, pod_level=True)
    sysctls = sc.get("sysctls") or []
    kept = [s for s in sysctls if s.get("name") in SAFE_SYSCTLS]
    if len(kept) != len(sysctls):
        unsafe = ", ".join(str(s.get("name")) for s in sysctls if s not in kept)
        edits.set("sysctls", kept or REMOVE, note=False)
        edits.notes.append(f"pod: securityContext.sysctls {unsafe} removed (not a safe sysctl)")
    changes.extend(edits.changes)
    notes.extend(edits.notes)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            changes.append(Change(("metadata", "annotations", key), "runtime/default"))
            notes.append(f"pod: annotation {key}={value} overridden to runtime/default")


def _container(ref: ContainerRef, policy: Policy, changes: list[Change], notes: list[str]) -> None:
    sc = ref.container.get("securityContext") or {}
    edits = _Edits((*ref.path, "securityContext"), ref.label)
    escalation = sc.get("allowPrivilegeEscalation")
    if escalation is not False:
        edits.set("allowPrivilegeEscalation", False, was=escalation, note=escalation is True)
    if sc.get("privileged") is True:
        edits.set("privileged", False, was=True)
    caps = sc.get("capabilities") or {}
    drop = caps.get("drop") or []
    if "ALL" not in drop:
        edits.set("capabilities.drop", [*drop, "ALL"], note=False)
    add = caps.get("add") or []
    allowed = policy.security_context.allowed_capabilities
    kept = [c for c in add if c in allowed]
    if len(kept) != len(add):
        edits.set("capabilities.add", kept or REMOVE, note=False)
        removed = ", ".join(c for c in add if c not in allowed)
        edits.notes.append(f"{ref.label}: securityContext.capabilities.add {removed} removed")
    proc_mount = sc.get("procMount")
    if proc_mount is not None and proc_mount != "Default":
        edits.set("procMount", "Default", was=proc_mount)
    _common(sc, edits, policy, pod_level=False)
    read_only = sc.get("readOnlyRootFilesystem")
    if policy.security_context.read_only_root_filesystem and read_only is not True:
        edits.set("readOnlyRootFilesystem", True, was=read_only, note=read_only is False)
    exists = ref.container.get("securityContext") is not None
    changes.extend(grouped(edits.base, exists, edits.changes))
    notes.extend(edits.notes)


def _finish(changes: list[Change], notes: list[str]) -> Outcome:
    if not changes:
        return EMPTY
    return Outcome(changes=tuple(changes), notes=tuple(notes))


def check_security_context(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    changes: list[Change] = []
    notes: list[str] = []
    _pod_level(pod, policy, changes, notes)
    for ref in visit_containers(pod, facts):
        _container(ref, policy, changes, notes)
    return _finish(changes, notes)


def check_ephemeral_security_context(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    changes: list[Change] = []
    notes: list[str] = []
    for ref in visit_containers(pod, facts, ("ephemeralContainers",)):
        _container(ref, policy, changes, notes)
    return _finish(changes, notes)


def _host_process(sc: dict[str, Any] | None) -> bool:
    return bool(((sc or {}).get("windowsOptions") or {}).get("hostProcess"))


def _handlers(container: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if container.get(probe):
            found.append((probe, container[probe]))
    lifecycle = container.get("lifecycle") or {}
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook):
            found.append((f"lifecycle.{hook}", lifecycle[hook]))
    return found


def _host_access_of_containers(
    pod: Pod, facts: Facts, kinds: tuple[str, ...], out: list[Violation]
) -> None:
    for ref in visit_containers(pod, facts, kinds):
        if _host_process(ref.container.get("securityContext")):
            out.append(ref.violation("securityContext.windowsOptions.hostProcess is not allowed"))
        for where, handler in _handlers(ref.container):
            for action in ("httpGet", "tcpSocket"):
                host = (handler.get(action) or {}).get("host")
                if host:
                    out.append(ref.violation(f"{where}.{action}.host {host!r} is not allowed"))
        for i, port in enumerate(ref.container.get("ports") or ()):
            host_port = port.get("hostPort")
            if host_port:
                out.append(
                    ref.violation(
                        f"ports[{i}].hostPort {host_port} is not allowed; "
                        "host ports are not supported for task pods"
                    )
                )


def check_host_access(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    spec = pod.get("spec") or {}
    found: list[Violation] = []
    for field, what in (
        ("hostNetwork", "host networking"),
        ("hostPID", "the host's PID namespace"),
        ("hostIPC", "the host's IPC namespace"),
    ):
        if spec.get(field) is True:
            found.append(Violation(f"spec.{field}", f"{what} is not allowed for task pods"))
    if _host_process(spec.get("securityContext")):
        found.append(Violation("spec.securityContext", "windowsOptions.hostProcess is not allowed"))
    _host_access_of_containers(
        pod, facts, ("initContainers", "containers", "ephemeralContainers"), found
    )
    return Outcome(violations=tuple(found)) if found else EMPTY


def check_ephemeral_host_access(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    found: list[Violation] = []
    _host_access_of_containers(pod, facts, ("ephemeralContainers",), found)
    return Outcome(violations=tuple(found)) if found else EMPTY

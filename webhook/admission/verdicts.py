"""What the policy says about a pod that already runs (SPEC §13), pure.

Audit runs a stored pod through the same ``decide`` as its CREATE. A pod as
the apiserver stores it is not the object its CREATE carried: ``as_created``
is the ONE place that turns one into the other, field by field:

- ``status``: written by the kubelet; at CREATE the apiserver resets it to
  ``Pending`` before admission. Dropped (no rule reads it).
- ``metadata.uid``, ``resourceVersion``, ``creationTimestamp``, ``generation``,
  ``managedFields``, ``deletionTimestamp``, ``deletionGracePeriodSeconds``:
  set by the apiserver after mutating admission. Dropped.
- ``spec.nodeName``: set by the scheduler's binding (``pods/binding``), which
  records no field manager. A pod whose CREATE set it (bypassing the
  scheduler) shows it in a managed-fields entry of the pod itself; only then
  is it kept, so that a rule judging ``nodeName`` judges the author, not the
  scheduler. Without managed fields at all it is taken to be the scheduler's.
- ``spec.ephemeralContainers``: added later through their subresource
  (``kubectl debug``); kept, because the CREATE rules judge every container
  kind with the same security context checks as that subresource's update.

Everything else (labels, annotations, containers, volumes) is what the CREATE
carried after every mutating webhook, ours included: a pod we admitted and
nobody changed since yields no patch (mutation is idempotent), so it is
``compliant``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from webhook.admission.decide import Decision
from webhook.admission.patch import PatchOp
from webhook.policy.airflow import task_identity

AuditVerdict = Literal["compliant", "would-mutate", "would-deny"]
VERDICTS: Final[tuple[AuditVerdict, ...]] = ("compliant", "would-mutate", "would-deny")

SERVER_SET_METADATA: Final = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def _author_set_node_name(managed_fields: Any) -> bool:
    if not isinstance(managed_fields, list):
        return False
    for entry in managed_fields:
        if not isinstance(entry, dict) or entry.get("subresource"):
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec")
        if isinstance(spec, dict) and "f:nodeName" in spec:
            return True
    return False


def as_created(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The CREATE object of a stored pod (see the module docstring). Never
    mutates ``pod``; copies only the two maps it changes."""
    created = {key: value for key, value in pod.items() if key != "status"}
    metadata = pod.get("metadata")
    if isinstance(metadata, dict):
        created["metadata"] = {
            key: value for key, value in metadata.items() if key not in SERVER_SET_METADATA
        }
        managed = metadata.get("managedFields")
    else:
        managed = None
    spec = pod.get("spec")
    if isinstance(spec, dict) and "nodeName" in spec and not _author_set_node_name(managed):
        created["spec"] = {key: value for key, value in spec.items() if key != "nodeName"}
    return created


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class PodAudit:
    """One judged pod: SPEC §13's fields, plus the ids of the rules it hit."""

    namespace: str
    name: str
    uid: str
    verdict: AuditVerdict
    dag: str = ""
    task: str = ""
    run: str = ""
    try_number: str = ""
    profile: str = ""
    violations: tuple[Finding, ...] = ()
    patch: list[PatchOp] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The object of the json / yaml outputs (SPEC §13's keys, in its order)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "dag": self.dag,
            "task": self.task,
            "run": self.run,
            "try": self.try_number,
            "profile": self.profile,
            "verdict": self.verdict,
            "violations": [
                {"rule": v.rule, "field": v.field, "message": v.message} for v in self.violations
            ],
            "patch": self.patch,
            "warnings": list(self.warnings),
        }


def audit_of(stored: Mapping[str, Any], namespace: str, decision: Decision) -> PodAudit | None:
    """The audit of the stored pod ``stored`` from the decision on its CREATE;
    None when the webhook would not judge it (exempt, mirror, not a task pod)."""
    if decision.verdict == "skipped":
        return None
    metadata = stored.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    annotations, labels = metadata.get("annotations"), metadata.get("labels")
    identity = dict(
        task_identity(
            annotations if isinstance(annotations, dict) else {},
            labels if isinstance(labels, dict) else {},
        )
    )
    name = metadata.get("name")
    uid = metadata.get("uid")
    common: dict[str, Any] = {
        "namespace": namespace,
        "name": name if isinstance(name, str) else "",
        "uid": uid if isinstance(uid, str) else "",
        "dag": identity.get("dag", ""),
        "task": identity.get("task", ""),
        "run": identity.get("run", ""),
        "try_number": identity.get("try", ""),
        "profile": decision.profile,
        "warnings": tuple(decision.response.get("warnings", ())),
        "rules": decision.rules,
    }
    if decision.verdict == "denied":
        findings = tuple(Finding(rule, v.where, v.what) for rule, v in decision.violations)
        return PodAudit(verdict="would-deny", violations=findings, **common)
    if decision.verdict == "errored":
        # A bug of ours: the webhook would answer with an error, so the pod
        # would not be admitted. The message carries the reference to report.
        where = decision.reason.split(":", 1)[0]
        message = decision.response.get("status", {}).get("message", "internal error")
        common["rules"] = (*decision.rules, where)
        return PodAudit(verdict="would-deny", violations=(Finding(where, "", message),), **common)
    if decision.verdict == "patched":
        return PodAudit(verdict="would-mutate", patch=decision.patch, **common)
    return PodAudit(verdict="compliant", **common)

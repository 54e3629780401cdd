"""What every rule shares: the facts it may read, the outcome it returns, and
one container visitor so that no rule forgets init or ephemeral containers.

A rule is a pure function ``(pod, policy, facts) -> Outcome``. It reads the pod
as received (never mutates it) and says what must change (``Change``: a path
and the value it must have, or ``REMOVE``), what it overrode (``notes``, one
short sentence each, turned into warnings), and what can't be made right by a
patch (``Violation``). The rule does not know its action: admission applies
enforce / warn / audit to every family the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

from webhook.policy import Policy

Pod = dict[str, Any]
PathPart = str | int
Path = tuple[PathPart, ...]


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()


# The values made on the hot path (per container, per field) are NamedTuples:
# immutable like a frozen dataclass, several times cheaper to create.


class Change(NamedTuple):
    path: Path
    value: Any  # the value the field must have, or REMOVE
    # False for bookkeeping (e.g. the record of original values): part of the
    # patch, but not a state that /validate requires.
    enforced: bool = True


class Violation(NamedTuple):
    """What a patch can't put right: the place, the problem and the rule.

    ``what`` opens with the problem and, after ``"; "``, gives the detail (what
    is allowed, what to do). ``subject`` names the item in a word or two
    ("container base", "volume data") for the short form; without it the
    field path serves.
    """

    where: str  # field path with the item's name: "spec.volumes[0] (name=data)"
    what: str  # "hostPath volumes are not supported for task pods; allowed types: ..."
    subject: str = ""  # "volume data"

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"

    @property
    def gist(self) -> str:
        """One short line: the subject and the problem, without the detail."""
        return f"{self.subject or self.where}: {self.what.split('; ', 1)[0]}"


class Outcome(NamedTuple):
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = ()


EMPTY: Final = Outcome()


@dataclass(frozen=True, slots=True)
class ServiceAccountFact:
    """What the API said about the pod's service account (SPEC §4.5, §6)."""

    status: Literal["found", "missing", "error"]
    annotations: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """What admission learned around the pod before deciding.

    ``namespace_labels`` and ``service_account`` are None when unknown (no
    Kubernetes API access, or lookups are off). ``existing_ephemeral`` names
    ephemeral containers the pod already had before an ephemeral-containers
    update: immutable, so no rule patches or judges them again.
    """

    namespace: str = ""
    namespace_labels: Mapping[str, str] | None = None
    service_account: ServiceAccountFact | None = None
    existing_ephemeral: frozenset[str] = frozenset()


Check = Callable[[Pod, Policy, Facts], Outcome]

CONTAINER_KINDS: Final = ("initContainers", "containers", "ephemeralContainers")


_KIND_WORDS: Final = {
    "containers": "container",
    "initContainers": "init container",
    "ephemeralContainers": "ephemeral container",
}


class ContainerRef(NamedTuple):
    kind: str  # "containers" | "initContainers" | "ephemeralContainers"
    position: int  # index in its list
    container: dict[str, Any]
    name: str

    @property
    def path(self) -> Path:
        return ("spec", self.kind, self.position)

    @property
    def where(self) -> str:
        return f"spec.{self.kind}[{self.position}] (name={self.name})"

    @property
    def label(self) -> str:
        """How warnings name it: "container base", "init container git-sync"."""
        return f"{_KIND_WORDS[self.kind]} {self.name}"

    def violation(self, what: str) -> Violation:
        return Violation(self.where, what, self.label)


def visit_containers(
    pod: Pod, facts: Facts, kinds: tuple[str, ...] = CONTAINER_KINDS
) -> Iterator[ContainerRef]:
    """Every container of the given kinds; shapes were checked before rules run."""
    spec = pod.get("spec") or {}
    for kind in kinds:
        for index, container in enumerate(spec.get(kind) or ()):
            name = container.get("name")
            if not isinstance(name, str):
                name = ""
            if kind == "ephemeralContainers" and name in facts.existing_ephemeral:
                continue
            yield ContainerRef(kind, index, container, name)


def grouped(base: Path, exists: bool, changes: list[Change]) -> list[Change]:
    """``changes`` under ``base``; when ``base`` is absent, one change that adds it whole.

    Purely a saving (one change instead of one per field, for the many pods
    that set no securityContext or no resources): the patch is the same."""
    if exists or not changes:
        return changes
    whole: dict[str, Any] = {}
    depth = len(base)
    for change in changes:
        if change.value is REMOVE:
            continue
        node = whole
        for part in change.path[depth:-1]:
            node = node.setdefault(str(part), {})
        node[str(change.path[-1])] = change.value
    return [Change(base, whole)] if whole else []


def get_in(obj: Any, *path: PathPart) -> Any:
    """``obj[p0][p1]...`` or None where any step is missing (or null)."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(obj, list) or part >= len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[part] if isinstance(part, int) else obj.get(part)
        if obj is None:
            return None
    return obj

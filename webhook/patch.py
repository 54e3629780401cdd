"""From rule changes to a minimal RFC 6902 JSON Patch, computed while walking.

Rules emit ``Change(path, value)`` leaves. They are merged into one tree (a
later change to the same path wins) and turned into operations against the
object as received: ``replace`` where the field exists and differs, ``add``
where it does not (a missing parent is added whole, once), ``remove`` for
``REMOVE``. Nothing is emitted for a field that already has its value, which
is what makes mutation idempotent. No deep copy, no diff of whole pods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhook.rules.base import REMOVE, Change, PathPart

PatchOp = dict[str, Any]
_Tree = dict[PathPart, Any]


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def escape(part: PathPart) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` → ``~0``, ``/`` → ``~1``)."""
    if isinstance(part, int):
        return str(part)
    if "~" in part or "/" in part:
        return part.replace("~", "~0").replace("/", "~1")
    return part


def _merge(changes: Iterable[Change]) -> _Tree:
    root: _Tree = {}
    for change in changes:
        node = root
        *parents, last = change.path
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[last] = _Leaf(change.value)
    return root


def _materialize(node: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in node.items():
        if isinstance(sub, _Leaf):
            if sub.value is not REMOVE:
                out[str(key)] = sub.value
        else:
            value = _materialize(sub)
            if value:
                out[str(key)] = value
    return out


def _has(current: Any, key: PathPart) -> bool:
    if isinstance(key, int):
        return isinstance(current, list) and 0 <= key < len(current)
    return isinstance(current, dict) and key in current


def _emit(node: _Tree, current: Any, pointer: str, ops: list[PatchOp]) -> None:
    for key, sub in node.items():
        path = f"{pointer}/{escape(key)}"
        present = _has(current, key)
        value = current[key] if present else None
        if isinstance(sub, _Leaf):
            if sub.value is REMOVE:
                if present:
                    ops.append({"op": "remove", "path": path})
            elif not present:
                ops.append({"op": "add", "path": path, "value": sub.value})
            elif value != sub.value or type(value) is not type(sub.value):
                ops.append({"op": "replace", "path": path, "value": sub.value})
        elif isinstance(value, dict | list):
            _emit(sub, value, path, ops)
        else:
            whole = _materialize(sub)
            if whole:
                ops.append({"op": "replace" if present else "add", "path": path, "value": whole})


def build_patch(obj: dict[str, Any], changes: Iterable[Change]) -> list[PatchOp]:
    """The JSON Patch that gives ``obj`` every change, and nothing else."""
    ops: list[PatchOp] = []
    _emit(_merge(changes), obj, "", ops)
    return ops

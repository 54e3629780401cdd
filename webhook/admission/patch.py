"""From rule changes to a minimal RFC 6902 JSON Patch, computed while walking.

Rules emit ``Change(path, value)``: the value a field must have, or
``REMOVE``. Each change is looked up in the object as received: where its
parent exists the operation is emitted directly (``replace`` where the field
exists and differs, ``add`` where it does not, ``remove`` for ``REMOVE``, and
nothing where the field already has its value, which is what makes mutation
idempotent); where a parent is missing, the first missing parent is added
whole, once, and later changes under it fill that same value in. No deep copy
and no diff of whole pods. Changes to one path are applied in order (a later
one wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhook.rules.base import REMOVE, Change, PathPart

PatchOp = dict[str, Any]


def escape(part: PathPart) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` → ``~0``, ``/`` → ``~1``)."""
    if isinstance(part, int):
        return str(part)
    if "~" in part or "/" in part:
        return part.replace("~", "~0").replace("/", "~1")
    return part


def pointer(path: tuple[PathPart, ...]) -> str:
    text = "/".join([part if type(part) is str else str(part) for part in path])
    if "~" in text or text.count("/") != len(path) - 1:
        # A key holds "~" or "/" (an annotation key): escape it. Rare, so checked once.
        return "/" + "/".join(map(escape, path))
    return "/" + text


def build_patch(obj: Any, changes: Iterable[Change]) -> list[PatchOp]:
    """The JSON Patch that gives ``obj`` every change, and nothing else."""
    ops: list[PatchOp] = []
    added: dict[tuple[PathPart, ...], dict[str, Any]] = {}  # parents we add whole
    walked: dict[tuple[PathPart, ...], tuple[Any, int]] = {}  # parent path -> (node, depth)
    final = {change.path: change.value for change in changes}  # a later change wins
    for path, value in final.items():
        last = len(path) - 1
        parent = path[:last]
        found = walked.get(parent)
        if found is None:
            node = obj
            depth = 0
            while depth < last:
                part = path[depth]
                if type(node) is dict:
                    child = node.get(part)
                elif type(node) is list and type(part) is int and part < len(node):
                    child = node[part]
                else:
                    child = None
                if type(child) is not dict and type(child) is not list:
                    break
                node = child
                depth += 1
            walked[parent] = (node, depth)
        else:
            node, depth = found
        if depth < last:
            # path[: depth + 1] is missing (or null): add it whole, once.
            if value is REMOVE:
                continue
            key = path[: depth + 1]
            holder = added.get(key)
            if holder is None:
                holder = added[key] = {}
                present = type(node) is dict and path[depth] in node
                ops.append({"op": "replace" if present else "add", "path": pointer(key),
                            "value": holder})  # fmt: skip
            for part in path[depth + 1 : last]:
                inner = holder.get(str(part))
                if inner is None:
                    inner = holder[str(part)] = {}
                holder = inner
            holder[str(path[last])] = value
            continue
        field = path[last]
        present = field in node if type(node) is dict else type(field) is int and field < len(node)
        if value is REMOVE:
            if present:
                ops.append({"op": "remove", "path": pointer(path)})
        elif not present:
            ops.append({"op": "add", "path": pointer(path), "value": value})
        else:
            current = node[field]
            if current != value or type(current) is not type(value):
                ops.append({"op": "replace", "path": pointer(path), "value": value})
    return ops

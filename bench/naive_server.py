"""The naive mutator: our server, with the patch made the slow way.

The design the project avoided: deep-copy the pod, apply the policy's changes
to the copy, and let ``jsonpatch.make_patch(original, mutated)`` find the
patch by diffing the two whole pods. Everything else is ``task-pod-webhook
serve`` itself, unchanged (TLS, uvloop, orjson, parsing, rules, warnings,
logging, metrics, response): the same CLI, with two functions of
``webhook.admission.decide`` swapped in this process only.

* ``evaluate`` (runs for every judged pod): after the rules, deep-copy the pod
  and apply every enforced change to the copy, as a mutate-the-copy design
  does whether or not anything changes; unless a rule found a violation (the
  pod is denied, nothing to diff: generous to the naive design), diff the two.
* ``build_patch``: returns that diff instead of walking the changes.

Only ``/mutate`` with ``--workers 1`` is meant (``--workers N`` starts fresh
processes that would not have the swap).

    python bench/naive_server.py serve --no-kube --port P ...
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from typing import Any

import jsonpatch

from webhook.admission import decide as admission
from webhook.rules.base import REMOVE, Change

_evaluate = admission.evaluate
_diff: list[list[dict[str, Any]]] = []  # the patch computed for the review in progress


def apply_change(obj: Any, change: Change) -> None:
    """Set ``change.path`` in ``obj`` to ``change.value`` (missing parents created)."""
    *parents, last = change.path
    node = obj
    for part in parents:
        if isinstance(part, int):
            node = node[part]
            continue
        child = node.get(part)
        if not isinstance(child, dict | list):
            child = node[part] = {}
        node = child
    if change.value is REMOVE:
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        node[last] = change.value


def naive_evaluate(rules: Any, pod: Any, policy: Any, facts: Any) -> Any:
    results = _evaluate(rules, pod, policy, facts)
    mutated = copy.deepcopy(pod)
    denied = False
    for _rule, action, outcome in results:
        if action != "enforce":
            continue
        denied = denied or bool(outcome.violations)
        for change in outcome.changes:
            apply_change(mutated, change)
    _diff.clear()
    if not denied:
        _diff.append(jsonpatch.make_patch(pod, mutated).patch)
    return results


def naive_build_patch(obj: dict[str, Any], changes: Iterable[Change]) -> list[dict[str, Any]]:
    if _diff:
        return _diff.pop()
    mutated = copy.deepcopy(obj)  # not reached through decide; kept correct anyway
    for change in changes:
        apply_change(mutated, change)
    patch: list[dict[str, Any]] = jsonpatch.make_patch(obj, mutated).patch
    return patch


def install() -> None:
    admission.evaluate = naive_evaluate  # type: ignore[assignment]
    admission.build_patch = naive_build_patch


if __name__ == "__main__":
    install()
    from webhook.cli import main

    sys.exit(main())

"""Compare a pod the apiserver stored with a fixture's ``mutated.yaml``.

The stored pod is the fixture's pod after our webhook *and* the apiserver's own
work; ``mutated.yaml`` is the pod after our webhook only. ``normalize_stored``
removes what the apiserver adds, and nothing else, so what remains must equal
the fixture exactly:

- identity and bookkeeping the server assigns: ``metadata.uid``,
  ``resourceVersion``, ``creationTimestamp``, ``managedFields``,
  ``generation``; and ``status`` (written by the server, never by a client);
- API defaults (``pkg/apis/core/v1/defaults.go``) for fields the fixture does
  not set: ``DEFAULTED`` lists them by path; the stored value is dropped only
  when ``mutated.yaml`` has no value there, so a default never hides a field
  the webhook set;
- the two tolerations the ``DefaultTolerationSeconds`` admission plugin adds
  (not-ready / unreachable for 300 s), when the fixture has none like them;
- ``omitempty``: an empty list or map, or a false plain boolean
  (``FALSE_OMITTED``), in the fixture is absent once stored
  (``normalize_expected`` drops them; the stored pod never has them);
- canonical quantities: the apiserver re-serializes ``resources`` quantities
  in canonical form (``0.5`` -> ``500m``); both sides are compared canonically
  with the kubernetes client's parser.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.utils import parse_quantity

SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")

_PROJECTED_SOURCES = ("spec", "volumes", "*", "projected", "sources", "*")

# Paths (``*``: every element of a list) the apiserver defaults when unset.
DEFAULTED: tuple[tuple[str, ...], ...] = (
    ("spec", "dnsPolicy"),
    ("spec", "restartPolicy"),
    ("spec", "schedulerName"),
    ("spec", "terminationGracePeriodSeconds"),
    ("spec", "enableServiceLinks"),
    ("spec", "preemptionPolicy"),
    ("spec", "priority"),
    ("spec", "securityContext"),
    ("spec", "serviceAccount"),  # the deprecated alias, copied from serviceAccountName
    ("spec", "serviceAccountName"),  # ... and the other way round
    ("spec", "volumes", "*", "hostPath", "type"),  # "" (HostPathUnset)
    *(
        (*prefix, "*", field)
        for prefix in (
            ("spec", "containers"),
            ("spec", "initContainers"),
            ("spec", "ephemeralContainers"),
        )
        for field in ("terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy")
    ),
    *(
        (*prefix, "*", "ports", "*", "protocol")
        for prefix in (("spec", "containers"), ("spec", "initContainers"))
    ),
    *(
        (*prefix, "*", "env", "*", "valueFrom", "fieldRef", "apiVersion")
        for prefix in (("spec", "containers"), ("spec", "initContainers"))
    ),
    ("spec", "volumes", "*", "configMap", "defaultMode"),
    ("spec", "volumes", "*", "secret", "defaultMode"),
    ("spec", "volumes", "*", "projected", "defaultMode"),
    ("spec", "volumes", "*", "downwardAPI", "defaultMode"),
    ("spec", "volumes", "*", "downwardAPI", "items", "*", "fieldRef", "apiVersion"),
    (*_PROJECTED_SOURCES, "downwardAPI", "items", "*", "fieldRef", "apiVersion"),
    (*_PROJECTED_SOURCES, "serviceAccountToken", "expirationSeconds"),
)

# Plain (not pointer) booleans with ``omitempty``: a false value is not stored.
FALSE_OMITTED: tuple[tuple[str, ...], ...] = (
    ("spec", "hostNetwork"),
    ("spec", "hostPID"),
    ("spec", "hostIPC"),
    *(
        (*prefix, "*", field)
        for prefix in (("spec", "containers"), ("spec", "initContainers"))
        for field in ("stdin", "stdinOnce", "tty")
    ),
    *(
        (*prefix, "*", "volumeMounts", "*", "readOnly")
        for prefix in (("spec", "containers"), ("spec", "initContainers"))
    ),
)

DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _drop(value: Any, other: Any, path: tuple[str, ...], drop: Any) -> None:
    """Delete the values at `path` in `value` for which ``drop(mine, theirs)`` holds,
    `theirs` being what `other` (a document of the same shape) has at the same place."""
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, list):
            others = other if isinstance(other, list) else []
            for index, item in enumerate(value):
                _drop(item, others[index] if index < len(others) else None, rest, drop)
        return
    if not isinstance(value, dict) or head not in value:
        return
    nested = other.get(head) if isinstance(other, dict) else None
    if rest:
        _drop(value[head], nested, rest, drop)
    elif drop(value[head], nested):
        del value[head]


def _canonical(value: Any, path: tuple[str, ...] = ()) -> Any:
    """Empty lists and maps dropped; quantities under ``resources`` made comparable."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            canonical = _canonical(item, (*path, key))
            if canonical in ({}, []) and key not in ("affinity", "emptyDir"):
                continue
            result[key] = canonical
        return result
    if isinstance(value, list):
        return [_canonical(item, path) for item in value]
    if isinstance(value, str) and "resources" in path:
        try:
            return format(parse_quantity(value).normalize(), "f")
        except ValueError:
            return value
    return value


def normalize_expected(mutated: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(mutated)
    for path in FALSE_OMITTED:
        _drop(pod, None, path, lambda mine, _: mine is False)
    result: dict[str, Any] = _canonical(pod)
    return result


def normalize_stored(stored: dict[str, Any], mutated: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(stored)
    pod.pop("status", None)
    for key in SERVER_METADATA:
        pod["metadata"].pop(key, None)
    for path in DEFAULTED:  # only where the fixture has no value of its own
        _drop(pod, mutated, path, lambda _, theirs: theirs is None)
    expected_keys = {t.get("key") for t in mutated.get("spec", {}).get("tolerations") or []}
    tolerations = [
        t
        for t in pod["spec"].get("tolerations", [])
        if not (
            t.get("key") in DEFAULT_TOLERATION_KEYS
            and t.get("key") not in expected_keys
            and t.get("tolerationSeconds") == 300
        )
    ]
    pod["spec"]["tolerations"] = tolerations
    return normalize_expected(pod)

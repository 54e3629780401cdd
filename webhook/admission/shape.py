"""The shape of the pod fields the rules read, checked once before they run.

The apiserver sends well-formed pods, but ``review`` reads hand-written
manifests and a hostile client can send anything. Rather than let a rule trip
over a string where a list belongs, every field a rule reads is checked here
against a small declarative schema, and each mismatch becomes a violation
naming the field (``spec.containers[0].ports: expected a list, got string``).
A JSON ``null`` counts as absent, as in the Kubernetes API. Fields the rules
don't read are not looked at.

The schema is compiled once into plain closures that only answer "well
formed?", which is all a request from the apiserver ever needs; the walk that
names every bad field runs only when that answer is no.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook.rules.base import Violation


@dataclass(frozen=True, slots=True)
class Obj:
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Any


@dataclass(frozen=True, slots=True)
class MapOf:
    value: Any


STR, INT, BOOL, QUANTITY = "string", "integer", "boolean", "quantity"

_SECURITY_COMMON = {
    "runAsUser": INT,
    "runAsGroup": INT,
    "runAsNonRoot": BOOL,
    "seccompProfile": Obj({"type": STR, "localhostProfile": STR}),
    "appArmorProfile": Obj({"type": STR, "localhostProfile": STR}),
    "seLinuxOptions": Obj({"user": STR, "role": STR, "type": STR, "level": STR}),
    "windowsOptions": Obj({"hostProcess": BOOL}),
}
_POD_SECURITY = Obj({**_SECURITY_COMMON, "sysctls": ListOf(Obj({"name": STR, "value": STR}))})
_CONTAINER_SECURITY = Obj(
    {
        **_SECURITY_COMMON,
        "privileged": BOOL,
        "allowPrivilegeEscalation": BOOL,
        "capabilities": Obj({"add": ListOf(STR), "drop": ListOf(STR)}),
        "procMount": STR,
        "readOnlyRootFilesystem": BOOL,
    }
)
_HANDLER = Obj({"httpGet": Obj({"host": STR}), "tcpSocket": Obj({"host": STR})})
_CONTAINER = Obj(
    {
        "name": STR,
        "livenessProbe": _HANDLER,
        "readinessProbe": _HANDLER,
        "startupProbe": _HANDLER,
        "lifecycle": Obj({"postStart": _HANDLER, "preStop": _HANDLER}),
        "restartPolicy": STR,
        "securityContext": _CONTAINER_SECURITY,
        "resources": Obj({"requests": MapOf(QUANTITY), "limits": MapOf(QUANTITY)}),
        "ports": ListOf(Obj({"hostPort": INT, "containerPort": INT})),
        "volumeMounts": ListOf(Obj({"name": STR})),
    }
)
_NODE_REQUIREMENT = ListOf(Obj({"key": STR, "operator": STR, "values": ListOf(STR)}))
_AFFINITY = Obj(
    {
        "nodeAffinity": Obj(
            {
                "requiredDuringSchedulingIgnoredDuringExecution": Obj(
                    {
                        "nodeSelectorTerms": ListOf(
                            Obj(
                                {
                                    "matchExpressions": _NODE_REQUIREMENT,
                                    "matchFields": _NODE_REQUIREMENT,
                                }
                            )
                        )
                    }
                )
            }
        )
    }
)
_TOLERATION = Obj(
    {"key": STR, "operator": STR, "value": STR, "effect": STR, "tolerationSeconds": INT}
)
_VOLUME = Obj(
    {
        "name": STR,
        "projected": Obj({"sources": ListOf(Obj({"serviceAccountToken": Obj({"audience": STR})}))}),
    }
)
POD_SCHEMA = Obj(
    {
        "metadata": Obj(
            {
                "name": STR,
                "generateName": STR,
                "namespace": STR,
                "labels": MapOf(STR),
                "annotations": MapOf(STR),
            }
        ),
        "spec": Obj(
            {
                "containers": ListOf(_CONTAINER),
                "initContainers": ListOf(_CONTAINER),
                "ephemeralContainers": ListOf(_CONTAINER),
                "securityContext": _POD_SECURITY,
                "volumes": ListOf(_VOLUME),
                "serviceAccountName": STR,
                "serviceAccount": STR,
                "hostNetwork": BOOL,
                "hostPID": BOOL,
                "hostIPC": BOOL,
                "nodeName": STR,
                "nodeSelector": MapOf(STR),
                "tolerations": ListOf(_TOLERATION),
                "affinity": _AFFINITY,
                "priorityClassName": STR,
                "runtimeClassName": STR,
                "automountServiceAccountToken": BOOL,
            }
        ),
    }
)

_JSON_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
}


def _kind(value: object) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _scalar_ok(token: str, value: object) -> bool:
    if token == STR:
        return isinstance(value, str)
    if token == BOOL:
        return isinstance(value, bool)
    if token == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    # QUANTITY: the apiserver's decoder takes a string or a bare JSON number.
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _check(value: Any, schema: Any, path: str, out: list[Violation]) -> None:
    if value is None:
        return
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            out.append(Violation(path, f"expected an object, got {_kind(value)}"))
            return
        for key, sub in schema.fields.items():
            if key in value:
                _check(value[key], sub, f"{path}.{key}" if path else key, out)
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            out.append(Violation(path, f"expected a list, got {_kind(value)}"))
            return
        for index, item in enumerate(value):
            if item is None:  # a null *item* is not an absent field
                out.append(Violation(f"{path}[{index}]", "expected an item, got null"))
            else:
                _check(item, schema.item, f"{path}[{index}]", out)
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            out.append(Violation(path, f"expected an object, got {_kind(value)}"))
            return
        for key, item in value.items():
            _check(item, schema.value, f"{path}.{key}", out)
    elif not _scalar_ok(schema, value):
        expected = {QUANTITY: "a quantity string", INT: "an integer"}.get(schema, f"a {schema}")
        out.append(Violation(path, f"expected {expected}, got {_kind(value)}"))


_TYPES: dict[str, tuple[type, ...]] = {
    STR: (str,),
    INT: (int,),  # type() is exact: a bool is not an int here
    BOOL: (bool,),
    QUANTITY: (str, int, float),
}
Fits = Callable[[Any], bool]


def _compile(schema: Any) -> Fits:
    """A closure that tells whether a (non-null) value fits ``schema``."""
    if isinstance(schema, Obj):
        scalars = tuple((k, _TYPES[t]) for k, t in schema.fields.items() if isinstance(t, str))
        nested = tuple((k, _compile(t)) for k, t in schema.fields.items() if not isinstance(t, str))

        def fits_object(value: Any) -> bool:
            if type(value) is not dict:
                return False
            get = value.get
            for key, types in scalars:
                item = get(key)
                if item is not None and type(item) not in types:
                    return False
            for key, fits in nested:
                item = get(key)
                if item is not None and not fits(item):
                    return False
            return True

        return fits_object
    if isinstance(schema, ListOf):
        fits_item = _compile(schema.item)

        def fits_list(value: Any) -> bool:
            return type(value) is list and all(i is not None and fits_item(i) for i in value)

        return fits_list
    if isinstance(schema, MapOf):
        fits_value = _compile(schema.value)

        def fits_map(value: Any) -> bool:
            return type(value) is dict and all(
                v is None or fits_value(v)
                for v in value.values()  # null counts as absent
            )

        return fits_map
    types = _TYPES[schema]
    return lambda value: type(value) in types


_FITS_POD = _compile(POD_SCHEMA)


def check_pod_shape(pod: object) -> list[Violation]:
    """Every field the rules (and pod selection) read that has the wrong JSON type."""
    if _FITS_POD(pod):
        return []
    out: list[Violation] = []
    if not isinstance(pod, dict):
        return [Violation("object", f"expected a Pod object, got {_kind(pod)}")]
    _check(pod, POD_SCHEMA, "", out)
    return out

"""Field types of the policy model: constants, validated scalars, the strict base model."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from webhook.policy import quantity
from webhook.policy.syntax import label_key_error, label_value_error

Action = Literal["enforce", "warn", "audit"]
ResourceName = Literal["cpu", "memory", "ephemeral-storage"]

# Every volume source of core/v1 Volume, and the ones PSS restricted allows.
KNOWN_VOLUME_TYPES: frozenset[str] = frozenset(
    {
        "awsElasticBlockStore",
        "azureDisk",
        "azureFile",
        "cephfs",
        "cinder",
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "fc",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "gitRepo",
        "glusterfs",
        "hostPath",
        "image",
        "iscsi",
        "nfs",
        "persistentVolumeClaim",
        "photonPersistentDisk",
        "portworxVolume",
        "projected",
        "quobyte",
        "rbd",
        "scaleIO",
        "secret",
        "storageos",
        "vsphereVolume",
    }
)
RESTRICTED_VOLUME_TYPES: frozenset[str] = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
RESTRICTED_ADDABLE_CAPABILITIES: frozenset[str] = frozenset({"NET_BIND_SERVICE"})
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


# --- field types -----------------------------------------------------------


def _quantity_text(value: object) -> object:
    # YAML turns `cpu: 1` into an int; the spelling is what we write into pods.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    try:
        quantity.parse(value)
    except quantity.QuantityError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_label_key(key: str) -> str:
    if error := label_key_error(key):
        raise ValueError(error)
    return key


def _check_label_value(value: str) -> str:
    if error := label_value_error(value):
        raise ValueError(error)
    return value


def _check_namespace(name: str) -> str:
    if not _DNS_LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid namespace name (DNS label)")
    return name


QuantityText = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(_check_quantity)]
LabelKey = Annotated[str, AfterValidator(_check_label_key)]
LabelValue = Annotated[str, AfterValidator(_check_label_value)]
NamespaceName = Annotated[str, AfterValidator(_check_namespace)]
Quantities = dict[ResourceName, QuantityText]


def quantities_default(**values: str) -> Callable[[], Quantities]:
    """A default_factory for a resource table; ``ephemeral_storage`` → ``ephemeral-storage``."""
    table = cast(Quantities, {k.replace("_", "-"): v for k, v in values.items()})
    return lambda: dict(table)


class StrictModel(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=False, hide_input_in_errors=True
    )


# --- errors ----------------------------------------------------------------


def _location(loc: tuple[int | str, ...], prefix: str) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(document)"


def describe_error(error: Mapping[str, Any], prefix: str = "") -> str:
    """One pydantic error as ``path: message``, the path under ``prefix``."""
    # Drop pydantic's internal markers (function-after[...], union members) from the path.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{_location(loc, prefix)}: {msg}"

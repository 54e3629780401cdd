"""The rule families' sections of the policy (SPEC §4): one model each, with their
cross-field guarantees."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property
from typing import Literal, NamedTuple

from pydantic import (
    Field,
    model_validator,
)

from webhook.policy import quantity
from webhook.policy.airflow import AIRFLOW_LABEL_KEYS
from webhook.policy.fields import (
    KNOWN_VOLUME_TYPES,
    RESTRICTED_ADDABLE_CAPABILITIES,
    RESTRICTED_VOLUME_TYPES,
    Action,
    LabelKey,
    LabelValue,
    Quantities,
    ResourceName,
    StrictModel,
    quantities_default,
)
from webhook.policy.syntax import (
    DNS_SUBDOMAIN,
    compile_globs,
    label_key_error,
    label_value_error,
)

# --- rule families (§4) ----------------------------------------------------


class LabelsPolicy(StrictModel):
    action: Action = "enforce"
    set: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"task-pod-webhook/enforced": "true"}
    )
    from_namespace: list[LabelKey] = Field(default_factory=list, alias="fromNamespace")
    reserved_prefixes: list[str] = Field(
        default_factory=lambda: ["task-pod-webhook/"], alias="reservedPrefixes"
    )
    # deny: KubernetesPodOperator finds its pod by the labels it sent, so a
    # rewritten label would lose the pod; the task fails at once with the reason.
    reserved_labels: Literal["deny", "strip"] = Field("deny", alias="reservedLabels")

    @cached_property
    def reserved(self) -> tuple[str, ...]:
        """``reservedPrefixes`` as ``str.startswith`` takes them."""
        return tuple(self.reserved_prefixes)

    @model_validator(mode="after")
    def _airflow_labels_untouchable(self) -> LabelsPolicy:
        problems = []
        for key in sorted(AIRFLOW_LABEL_KEYS.intersection(self.set)):
            problems.append(f"set: {key!r} is Airflow's own label and cannot be set")
        for key in sorted(AIRFLOW_LABEL_KEYS.intersection(self.from_namespace)):
            problems.append(f"fromNamespace: {key!r} is Airflow's own label and cannot be set")
        for prefix in self.reserved_prefixes:
            if not prefix:
                problems.append("reservedPrefixes: an empty prefix would reserve every label")
            elif any(key.startswith(prefix) for key in AIRFLOW_LABEL_KEYS):
                problems.append(f"reservedPrefixes: {prefix!r} would remove Airflow's own labels")
        overlap = set(self.set).intersection(self.from_namespace)
        if overlap:
            problems.append(f"set and fromNamespace both name {sorted(overlap)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ResourceDefaults(StrictModel):
    requests: Quantities = Field(default_factory=quantities_default(cpu="500m", memory="1Gi"))
    limits: Quantities = Field(default_factory=quantities_default(cpu="1", memory="2Gi"))


class ResourceBound(NamedTuple):
    """What the policy says about one resource: (spelling, value) or None each."""

    name: str
    request: tuple[str, Decimal] | None  # defaults.requests
    limit: tuple[str, Decimal] | None  # defaults.limits
    low: tuple[str, Decimal] | None  # min
    high: tuple[str, Decimal] | None  # max


class ResourcesPolicy(StrictModel):
    action: Action = "enforce"
    defaults: ResourceDefaults = Field(default_factory=ResourceDefaults)
    min: Quantities = Field(default_factory=quantities_default(cpu="100m", memory="128Mi"))
    max: Quantities = Field(
        default_factory=quantities_default(cpu="43", memory="86Gi", ephemeral_storage="100Gi")
    )
    max_per_pod: Quantities = Field(
        default_factory=quantities_default(cpu="43", memory="86Gi"), alias="maxPerPod"
    )
    requests_equal_limits: bool = Field(default=False, alias="requestsEqualLimits")
    min_exempt_containers: list[str] = Field(
        default_factory=lambda: ["airflow-xcom-sidecar"], alias="minExemptContainers"
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ResourcesPolicy:
        problems = [
            f"min.{name} ({low}) is above max.{name} ({self.max[name]})"
            for name, low in self.min.items()
            if name in self.max and quantity.parse(low) > quantity.parse(self.max[name])
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def resource_names(self) -> tuple[str, ...]:
        """Every resource the policy says something about, in a stable order."""
        names: dict[str, None] = {}
        for table in (self.defaults.requests, self.defaults.limits, self.min, self.max):
            names.update(dict.fromkeys(table))
        return tuple(names)

    @cached_property
    def bounds(self) -> tuple[ResourceBound, ...]:
        """One entry per resource the policy names, parsed once per load."""
        parsed = self.parsed
        return tuple(
            ResourceBound(
                name,
                parsed["requests"].get(name),
                parsed["limits"].get(name),
                parsed["min"].get(name),
                parsed["max"].get(name),
            )
            for name in self.resource_names
        )

    @cached_property
    def parsed(self) -> dict[str, dict[str, tuple[str, Decimal]]]:
        """``{"min": {"cpu": ("100m", Decimal("0.1"))}, ...}``: parsed once per load."""
        tables: dict[str, Mapping[ResourceName, str]] = {
            "min": self.min,
            "max": self.max,
            "maxPerPod": self.max_per_pod,
            "requests": self.defaults.requests,
            "limits": self.defaults.limits,
        }
        return {
            key: {name: (text, quantity.parse(text)) for name, text in table.items()}
            for key, table in tables.items()
        }


class SecurityContextPolicy(StrictModel):
    action: Action = "enforce"
    run_as_user: int = Field(default=50000, ge=1, le=2147483647, alias="runAsUser")
    allowed_capabilities: list[str] = Field(
        default_factory=lambda: ["NET_BIND_SERVICE"], alias="allowedCapabilities"
    )
    read_only_root_filesystem: bool = Field(default=False, alias="readOnlyRootFilesystem")

    @model_validator(mode="after")
    def _restricted_capabilities(self) -> SecurityContextPolicy:
        extra = sorted(set(self.allowed_capabilities) - RESTRICTED_ADDABLE_CAPABILITIES)
        if extra:
            raise ValueError(
                f"allowedCapabilities: {extra} not allowed by the Pod Security Standards "
                f"restricted level (only {sorted(RESTRICTED_ADDABLE_CAPABILITIES)})"
            )
        return self


class VolumesPolicy(StrictModel):
    action: Action = "enforce"
    allowed: list[str] = Field(
        default_factory=lambda: ["configMap", "secret", "emptyDir", "projected", "downwardAPI"]
    )
    allowed_token_audiences: list[str] = Field(default_factory=list, alias="allowedTokenAudiences")

    @model_validator(mode="after")
    def _known_and_restricted(self) -> VolumesPolicy:
        problems = []
        for name in self.allowed:
            if name not in KNOWN_VOLUME_TYPES:
                problems.append(f"allowed: {name!r} is not a volume type of core/v1 Volume")
            elif name not in RESTRICTED_VOLUME_TYPES:
                problems.append(
                    f"allowed: {name!r} is not allowed by the Pod Security Standards "
                    "restricted level"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Identities(StrictModel):
    aws_accounts: list[str] = Field(default_factory=list, alias="awsAccounts")
    gcp_projects: list[str] = Field(default_factory=list, alias="gcpProjects")
    azure_client_ids: list[str] = Field(default_factory=list, alias="azureClientIds")

    @cached_property
    def aws(self) -> re.Pattern[str]:
        return compile_globs(self.aws_accounts)

    @cached_property
    def gcp(self) -> re.Pattern[str]:
        return compile_globs(self.gcp_projects)

    @cached_property
    def azure(self) -> re.Pattern[str]:
        return compile_globs(self.azure_client_ids)


class ServiceAccountsPolicy(StrictModel):
    action: Action = "enforce"
    allowed: list[str] = Field(default_factory=lambda: ["default", "airflow-worker"])
    lookup: bool = False
    identities: Identities = Field(default_factory=Identities)
    on_lookup_error: Literal["deny", "allow"] = Field(default="deny", alias="onLookupError")

    @cached_property
    def allowed_pattern(self) -> re.Pattern[str]:
        return compile_globs(self.allowed)


# --- placement (§16) ---------------------------------------------------------

TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
# What the apiserver's DefaultTolerationSeconds plugin adds to every pod before any
# webhook sees it: always allowed, whatever allowedTolerationKeys says.
APISERVER_TOLERATION_KEYS = frozenset(
    {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
)
# The Priority plugin admits system-* classes only in kube-system: a task pod could never use one.
_SYSTEM_PRIORITY_PREFIX = "system-"


class TolerationKey(NamedTuple):
    """A toleration as Kubernetes compares them: every field, defaults filled in."""

    key: str
    operator: str
    value: str
    effect: str
    seconds: int | None


def toleration_identity(toleration: Mapping[str, object]) -> TolerationKey:
    """``toleration`` (a pod's, shape-checked) with the API's defaults filled in."""
    seconds = toleration.get("tolerationSeconds")
    return TolerationKey(
        str(toleration.get("key") or ""),
        str(toleration.get("operator") or "Equal"),
        str(toleration.get("value") or ""),
        str(toleration.get("effect") or ""),
        seconds if isinstance(seconds, int) else None,
    )


class Toleration(StrictModel):
    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")

    @model_validator(mode="after")
    def _valid_toleration(self) -> Toleration:
        # The apiserver's own validation of a pod's toleration (ValidateTolerations).
        problems = []
        if self.key and (error := label_key_error(self.key)):
            problems.append(error)
        if not self.key and self.operator != "Exists":
            problems.append("an empty key needs operator Exists (it then tolerates every taint)")
        if self.operator == "Exists" and self.value:
            problems.append("value must be empty when operator is Exists")
        if self.operator == "Equal" and (error := label_value_error(self.value)):
            problems.append(error)
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            problems.append("tolerationSeconds needs effect NoExecute")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def identity(self) -> TolerationKey:
        return TolerationKey(
            self.key, self.operator, self.value, self.effect, self.toleration_seconds
        )

    @cached_property
    def in_pod(self) -> dict[str, object]:
        """The toleration as it is written into a pod (fields at their default left out)."""
        written: dict[str, object] = {}
        if self.key:
            written["key"] = self.key
        written["operator"] = self.operator
        if self.value:
            written["value"] = self.value
        if self.effect:
            written["effect"] = self.effect
        if self.toleration_seconds is not None:
            written["tolerationSeconds"] = self.toleration_seconds
        return written


def _class_name_error(field: str, name: str) -> str | None:
    if not name:
        return None
    if len(name) > 253 or not DNS_SUBDOMAIN.fullmatch(name):
        return f"{field}: {name!r} is not a valid object name (DNS subdomain)"
    return None


class PlacementPolicy(StrictModel):
    action: Action = "enforce"
    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: list[Toleration] = Field(default_factory=list)
    # Empty: no restriction (so the default changes nothing). Non-empty: these keys, the
    # keys of ``tolerations`` and the apiserver's own are allowed; "" allows the
    # empty-key toleration that tolerates every taint.
    allowed_toleration_keys: list[str] = Field(default_factory=list, alias="allowedTolerationKeys")
    priority_class_name: str = Field(default="", alias="priorityClassName")
    runtime_class_name: str = Field(default="", alias="runtimeClassName")
    automount_service_account_token: bool | None = Field(
        default=None, alias="automountServiceAccountToken"
    )

    @model_validator(mode="after")
    def _valid_names(self) -> PlacementPolicy:
        problems = [
            f"allowedTolerationKeys: {error}"
            for key in self.allowed_toleration_keys
            if key and (error := label_key_error(key))
        ]
        for field, name in (
            ("priorityClassName", self.priority_class_name),
            ("runtimeClassName", self.runtime_class_name),
        ):
            if error := _class_name_error(field, name):
                problems.append(error)
        if self.priority_class_name.startswith(_SYSTEM_PRIORITY_PREFIX):
            problems.append(
                f"priorityClassName: {self.priority_class_name!r} is a system priority class, "
                "admitted only in kube-system (every task pod would be refused)"
            )
        seen: set[TolerationKey] = set()
        for index, toleration in enumerate(self.tolerations):
            if toleration.identity in seen:
                problems.append(f"tolerations[{index}]: a duplicate of an earlier toleration")
            seen.add(toleration.identity)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def allowed_keys(self) -> frozenset[str] | None:
        """Toleration keys a pod may use, or None when any key is allowed."""
        if not self.allowed_toleration_keys:
            return None
        return frozenset(
            (
                *self.allowed_toleration_keys,
                *(t.key for t in self.tolerations),
            )
        )

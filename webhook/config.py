"""The policy: its model, the embedded default, loading with field-path errors.

A policy file is one YAML document. The model is strict: unknown keys, wrong
types and invalid values are all reported at once, each with its field path
(``resources.min.cpu: '12x' is not a valid quantity``). Keys that a file leaves
out take the default policy's values (SPEC §5), so the default policy *is*
this model's defaults.

Cross-field rules keep the product's guarantees true whatever the file says:
a policy can never set or strip Airflow's own labels, and can never allow a
volume type or capability that the Pod Security Standards *restricted* level
forbids (every admitted task pod must pass it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from webhook import quantity
from webhook.airflow import AIRFLOW_LABEL_KEYS
from webhook.syntax import compile_globs, label_key_error, label_value_error

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


class PolicyError(ValueError):
    """A policy that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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


def _quantities(**values: str) -> Callable[[], Quantities]:
    """A default_factory for a resource table; ``ephemeral_storage`` → ``ephemeral-storage``."""
    table = cast(Quantities, {k.replace("_", "-"): v for k, v in values.items()})
    return lambda: dict(table)


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=False, hide_input_in_errors=True
    )


# --- selection (§3) --------------------------------------------------------


class SelectorRequirement(_Model):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> SelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs a non-empty values list")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(_Model):
    """A Kubernetes label selector (all terms AND-ed; empty matches every pod)."""

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)


def _default_selectors() -> list[LabelSelector]:
    return [
        LabelSelector.model_validate({"matchLabels": {"kubernetes_executor": "True"}}),
        LabelSelector.model_validate({"matchLabels": {"kubernetes_pod_operator": "True"}}),
    ]


# --- rule families (§4) ----------------------------------------------------


class LabelsPolicy(_Model):
    action: Action = "enforce"
    set: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"task-pod-webhook/enforced": "true"}
    )
    from_namespace: list[LabelKey] = Field(default_factory=list, alias="fromNamespace")
    reserved_prefixes: list[str] = Field(
        default_factory=lambda: ["task-pod-webhook/"], alias="reservedPrefixes"
    )

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


class ResourceDefaults(_Model):
    requests: Quantities = Field(default_factory=_quantities(cpu="500m", memory="1Gi"))
    limits: Quantities = Field(default_factory=_quantities(cpu="1", memory="2Gi"))


class ResourceBound(NamedTuple):
    """What the policy says about one resource: (spelling, value) or None each."""

    name: str
    request: tuple[str, Decimal] | None  # defaults.requests
    limit: tuple[str, Decimal] | None  # defaults.limits
    low: tuple[str, Decimal] | None  # min
    high: tuple[str, Decimal] | None  # max


class ResourcesPolicy(_Model):
    action: Action = "enforce"
    defaults: ResourceDefaults = Field(default_factory=ResourceDefaults)
    min: Quantities = Field(default_factory=_quantities(cpu="100m", memory="128Mi"))
    max: Quantities = Field(
        default_factory=_quantities(cpu="43", memory="86Gi", ephemeral_storage="100Gi")
    )
    max_per_pod: Quantities = Field(
        default_factory=_quantities(cpu="43", memory="86Gi"), alias="maxPerPod"
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


class SecurityContextPolicy(_Model):
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


class VolumesPolicy(_Model):
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


class Identities(_Model):
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


class ServiceAccountsPolicy(_Model):
    action: Action = "enforce"
    allowed: list[str] = Field(default_factory=lambda: ["default", "airflow-worker"])
    lookup: bool = False
    identities: Identities = Field(default_factory=Identities)
    on_lookup_error: Literal["deny", "allow"] = Field(default="deny", alias="onLookupError")

    @cached_property
    def allowed_pattern(self) -> re.Pattern[str]:
        return compile_globs(self.allowed)


# --- the policy ------------------------------------------------------------


class Policy(_Model):
    match: Literal["labels", "namespace"] = "labels"
    selector: list[LabelSelector] = Field(default_factory=_default_selectors)
    platform_users: list[str] = Field(default_factory=list, alias="platformUsers")
    exempt_namespaces: list[NamespaceName] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "task-pod-webhook"],
        alias="exemptNamespaces",
    )
    labels: LabelsPolicy = Field(default_factory=LabelsPolicy)
    resources: ResourcesPolicy = Field(default_factory=ResourcesPolicy)
    security_context: SecurityContextPolicy = Field(
        default_factory=SecurityContextPolicy, alias="securityContext"
    )
    volumes: VolumesPolicy = Field(default_factory=VolumesPolicy)
    service_accounts: ServiceAccountsPolicy = Field(
        default_factory=ServiceAccountsPolicy, alias="serviceAccounts"
    )

    @model_validator(mode="after")
    def _selectable(self) -> Policy:
        if self.match == "labels" and not self.selector:
            raise ValueError("selector: at least one selector is needed when match is labels")
        return self

    @cached_property
    def platform_user_pattern(self) -> re.Pattern[str]:
        return compile_globs(self.platform_users)

    @cached_property
    def exempt(self) -> frozenset[str]:
        return frozenset(self.exempt_namespaces)

    def to_document(self) -> dict[str, Any]:
        """The effective policy as the YAML/JSON document a file would hold."""
        return self.model_dump(mode="json", by_alias=True)

    @cached_property
    def content_hash(self) -> str:
        canonical = json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @cached_property
    def actions(self) -> dict[str, Action]:
        """The configured action of each rule family, by its key in the policy file."""
        return {
            "labels": self.labels.action,
            "resources": self.resources.action,
            "securityContext": self.security_context.action,
            "volumes": self.volumes.action,
            "serviceAccounts": self.service_accounts.action,
        }

    def warm(self) -> Policy:
        """Compute every derived value now, so no request pays for it."""
        _ = (
            self.actions,
            self.labels.reserved,
            self.platform_user_pattern,
            self.exempt,
            self.content_hash,
            self.resources.resource_names,
            self.resources.parsed,
            self.resources.bounds,
            self.service_accounts.allowed_pattern,
            self.service_accounts.identities.aws,
            self.service_accounts.identities.gcp,
            self.service_accounts.identities.azure,
        )
        return self


# --- loading ---------------------------------------------------------------


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(document)"


def _describe(error: Mapping[str, Any]) -> str:
    # Drop pydantic's internal markers (function-after[...], union members) from the path.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{_location(loc)}: {msg}"


def policy_from_document(document: object) -> Policy:
    """Validate a parsed document; raises PolicyError with every problem."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PolicyError([f"(document): expected a mapping, got {type(document).__name__}"])
    try:
        return Policy.model_validate(document).warm()
    except ValidationError as exc:
        raise PolicyError([_describe(e) for e in exc.errors()]) from None


def load_policy_text(text: str, source: str = "policy") -> Policy:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise PolicyError([f"{source}: not valid YAML: {exc}"]) from None
    if len(documents) > 1:
        raise PolicyError([f"{source}: expected one YAML document, found {len(documents)}"])
    return policy_from_document(documents[0] if documents else None)


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path}: cannot read: {exc}"]) from None
    return load_policy_text(text, str(path))


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    global _DEFAULT  # noqa: PLW0603 - built once, immutable
    if _DEFAULT is None:
        _DEFAULT = Policy().warm()
    return _DEFAULT


def dump_policy(policy: Policy) -> str:
    return yaml.safe_dump(policy.to_document(), sort_keys=False, default_flow_style=False)

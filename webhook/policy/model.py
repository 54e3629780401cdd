"""The policy: selection keys (SPEC §3) and the rule families (SPEC §4) in one model."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    model_validator,
)

from webhook.policy.families import (
    LabelsPolicy,
    PlacementPolicy,
    ResourcesPolicy,
    SecurityContextPolicy,
    ServiceAccountsPolicy,
    VolumesPolicy,
)
from webhook.policy.fields import Action, NamespaceName, StrictModel
from webhook.policy.selectors import LabelSelector, default_selectors
from webhook.policy.syntax import compile_globs

# --- the policy ------------------------------------------------------------


class Policy(StrictModel):
    match: Literal["labels", "namespace"] = "labels"
    selector: list[LabelSelector] = Field(default_factory=default_selectors)
    platform_users: list[str] = Field(default_factory=list, alias="platformUsers")
    exempt_namespaces: list[NamespaceName] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "task-pod-webhook"],
        alias="exemptNamespaces",
    )
    # False: the namespace label task-pod-webhook/mode is ignored (tenants may label
    # their own namespaces, so it must not let them turn enforcement off).
    namespace_mode_label: bool = Field(default=True, alias="namespaceModeLabel")
    labels: LabelsPolicy = Field(default_factory=LabelsPolicy)
    resources: ResourcesPolicy = Field(default_factory=ResourcesPolicy)
    security_context: SecurityContextPolicy = Field(
        default_factory=SecurityContextPolicy, alias="securityContext"
    )
    volumes: VolumesPolicy = Field(default_factory=VolumesPolicy)
    service_accounts: ServiceAccountsPolicy = Field(
        default_factory=ServiceAccountsPolicy, alias="serviceAccounts"
    )
    placement: PlacementPolicy = Field(default_factory=PlacementPolicy)

    # Set by the loader (``policy.profiles``), in file order; never by the document itself.
    _profiles: tuple[Profile, ...] = PrivateAttr(default=())

    @property
    def profiles(self) -> tuple[Profile, ...]:
        """The profiles (SPEC §12), each with its merged and warmed policy."""
        return self._profiles

    @cached_property
    def profile_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self._profiles)

    @cached_property
    def looks_up_service_accounts(self) -> bool:
        """Whether the base policy or any profile reads the pod's service account (§4.5):
        the facts are gathered before the profile is chosen, so they serve every one."""
        return self.service_accounts.lookup or any(
            p.policy.service_accounts.lookup for p in self._profiles
        )

    @cached_property
    def profile_selections(self) -> dict[tuple[tuple[str, str], ...], Profile | None]:
        """Memo of ``profiles.select_profile`` by namespace labels, for this load only."""
        return {}

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
        document = self.model_dump(mode="json", by_alias=True)
        document["profiles"] = [dict(p.document) for p in self._profiles]
        return document

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
            "placement": self.placement.action,
        }

    def warm(self) -> Policy:
        """Compute every derived value now, so no request pays for it."""
        _ = (
            self.actions,
            self.labels.reserved,
            self.platform_user_pattern,
            self.exempt,
            self.content_hash,
            self.profile_names,
            self.looks_up_service_accounts,
            self.profile_selections,
            self.resources.resource_names,
            self.resources.parsed,
            self.resources.bounds,
            self.service_accounts.allowed_pattern,
            self.service_accounts.identities.aws,
            self.service_accounts.identities.gcp,
            self.service_accounts.identities.azure,
            self.placement.allowed_keys,
            *(t.identity for t in self.placement.tolerations),
            *(t.in_pod for t in self.placement.tolerations),
        )
        return self


# The rule family sections (SPEC §4, §16): every section of the policy that has an
# ``action``. Profiles merge exactly these; the other keys stay global. Derived from
# the model, so a new family is one more field of ``Policy`` and nothing else.
FAMILY_SECTIONS: tuple[str, ...] = tuple(
    field.alias or name
    for name, field in Policy.model_fields.items()
    if isinstance(field.annotation, type)
    and issubclass(field.annotation, StrictModel)
    and "action" in field.annotation.model_fields
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile of the policy file (SPEC §12), built once per policy load."""

    name: str
    selector: LabelSelector  # over the namespace's labels
    policy: Policy  # the base policy with the profile's sections merged in, warmed
    document: dict[str, Any]  # the profile as written (name, namespaceSelector, sections)

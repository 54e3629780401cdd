"""The policy: selection keys (SPEC §3) and the rule families (SPEC §4) in one model."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    Field,
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

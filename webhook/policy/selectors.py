"""Kubernetes label selectors (matchLabels, matchExpressions), as the policy file holds them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from webhook.policy.fields import LabelKey, LabelValue, StrictModel

# --- selection (§3) --------------------------------------------------------


class SelectorRequirement(StrictModel):
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


class LabelSelector(StrictModel):
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


def default_selectors() -> list[LabelSelector]:
    return [
        LabelSelector.model_validate({"matchLabels": {"kubernetes_executor": "True"}}),
        LabelSelector.model_validate({"matchLabels": {"kubernetes_pod_operator": "True"}}),
    ]

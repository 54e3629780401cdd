"""Profiles (SPEC §12): one policy file, many Airflow deployments, selected by the
labels of the pod's namespace.

```yaml
profiles:
  - name: large                    # [a-z0-9]([-a-z0-9]*[a-z0-9])?, unique, not "base"
    namespaceSelector:             # a Kubernetes LabelSelector over the namespace's labels
      matchLabels: {astro.example/size: large}
    resources: {max: {cpu: "16", memory: 64Gi}}
    serviceAccounts: {allowed: [large-worker, default]}
```

A profile holds any rule family section (``FAMILY_SECTIONS``), merged over the
effective base policy as a JSON Merge Patch (RFC 7386): maps merge key by key,
recursively; lists and scalars replace; ``null`` removes a key (a map entry, or a
field, which then takes its default). Every merged profile is validated as a full
policy; every problem of every profile is reported at once as
``profiles[i].<path>: ...``. Selection keys (``match``, ``selector``,
``exemptNamespaces``, ``platformUsers``) and ``namespaceModeLabel`` stay global.

Selection is pure: the first profile in file order whose selector matches the
namespace's labels; none matching → the base policy (``BASE``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from webhook.policy.fields import describe_error
from webhook.policy.model import FAMILY_SECTIONS, Policy, Profile
from webhook.policy.selectors import LabelSelector

BASE = "base"  # the name the base policy goes by in metrics, logs and annotations
PROFILE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_OWN_KEYS = ("name", "namespaceSelector")
SELECTIONS_KEPT = 16384  # distinct namespace label sets remembered per policy load
_UNSEEN: Any = object()

# Validates a policy document: the policy, or the errors each with its path.
Validate = Callable[[dict[str, Any]], "Policy | list[str]"]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base`` as a JSON Merge Patch (RFC 7386); neither is changed."""
    merged = dict(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        elif isinstance(value, Mapping):
            merged[key] = merge({}, value)  # nested nulls remove nothing, and are dropped
        else:
            merged[key] = value
    return merged


def _entry_errors(index: int, entry: object, seen: dict[str, int]) -> list[str]:
    """What is wrong with a profile entry itself, before any merging."""
    where = f"profiles[{index}]"
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping, got {type(entry).__name__}"]
    errors = []
    name = entry.get("name")
    if not isinstance(name, str):
        errors.append(f"{where}.name: a profile needs a name (a string)")
    elif not PROFILE_NAME.fullmatch(name):
        errors.append(
            f"{where}.name: {name!r} is not a valid profile name "
            "(lower-case letters, digits and '-', at most 63, [a-z0-9]([-a-z0-9]*[a-z0-9])?)"
        )
    elif name == BASE:
        errors.append(f"{where}.name: {BASE!r} is reserved for the base policy")
    elif name in seen:
        errors.append(f"{where}.name: {name!r} is already the name of profiles[{seen[name]}]")
    else:
        seen[name] = index
    if "namespaceSelector" not in entry:
        errors.append(f"{where}.namespaceSelector: a profile needs a namespaceSelector")
    for key in entry:
        if key in _OWN_KEYS or key in FAMILY_SECTIONS:
            continue
        if key in Policy.model_fields or any(f.alias == key for f in Policy.model_fields.values()):
            errors.append(
                f"{where}.{key}: a global key of the policy; a profile holds only "
                f"rule family sections ({', '.join(FAMILY_SECTIONS)})"
            )
        elif key == "profiles":
            errors.append(f"{where}.profiles: profiles do not nest")
        else:
            errors.append(f"{where}.{key}: unknown field")
    return errors


def _selector(index: int, raw: object) -> LabelSelector | list[str]:
    try:
        return LabelSelector.model_validate(raw)
    except ValidationError as exc:
        where = f"profiles[{index}].namespaceSelector"
        return [describe_error(e, where) for e in exc.errors()]


def build_profiles(
    raw: object, base_document: dict[str, Any], validate: Validate
) -> tuple[tuple[Profile, ...], list[str]]:
    """The profiles of ``raw`` (the file's ``profiles`` value) merged over
    ``base_document`` (the effective base policy, or the default's when the base is
    invalid), each validated by ``validate``; and every error, each with its path."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [f"profiles: expected a list, got {type(raw).__name__}"]
    base = {k: v for k, v in base_document.items() if k != "profiles"}
    profiles: list[Profile] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        problems = _entry_errors(index, entry, seen)
        if not isinstance(entry, dict):
            errors.extend(problems)
            continue
        selector = _selector(index, entry.get("namespaceSelector", {}))
        if isinstance(selector, list):
            problems.extend(selector)
        sections = {k: v for k, v in entry.items() if k in FAMILY_SECTIONS}
        merged = validate(merge(base, sections))
        if isinstance(merged, list):
            problems.extend(f"profiles[{index}].{line}" for line in merged)
        errors.extend(problems)
        if not problems and isinstance(selector, LabelSelector) and isinstance(merged, Policy):
            document = {
                "name": entry["name"],
                "namespaceSelector": selector.model_dump(mode="json", by_alias=True),
                **sections,
            }
            profiles.append(Profile(entry["name"], selector, merged, document))
    return tuple(profiles), errors


def select_profile(policy: Policy, namespace_labels: Mapping[str, str]) -> Profile | None:
    """The first profile, in file order, whose selector matches; None: the base policy.

    Memoized per policy load by the labels' content (a namespace's labels change
    rarely, and many pods share them), so a request pays one dict lookup, not one
    selector per profile; the memo is emptied when it outgrows ``SELECTIONS_KEPT``."""
    if not policy.profiles:
        return None
    key = tuple(namespace_labels.items())
    memo = policy.profile_selections
    chosen: Profile | None = memo.get(key, _UNSEEN)
    if chosen is _UNSEEN:
        chosen = next((p for p in policy.profiles if p.selector.matches(namespace_labels)), None)
        if len(memo) >= SELECTIONS_KEPT:
            memo.clear()
        memo[key] = chosen
    return chosen


def find_profile(policy: Policy, name: str) -> Profile | None:
    for profile in policy.profiles:
        if profile.name == name:
            return profile
    return None

"""Loading a policy: YAML text or file to ``Policy``, every problem reported with its
field path; the embedded default; dumping the effective policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from webhook.policy.fields import describe_error
from webhook.policy.model import Policy
from webhook.policy.profiles import build_profiles


class PolicyError(ValueError):
    """A policy that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# --- loading ---------------------------------------------------------------


def policy_from_document(document: object) -> Policy:
    """Validate a parsed document; raises PolicyError with every problem."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PolicyError([f"(document): expected a mapping, got {type(document).__name__}"])
    base_document = {k: v for k, v in document.items() if k != "profiles"}
    base = _validate(base_document)
    # An invalid base reports its own errors once; the profiles are then checked
    # over the default policy, so that their own errors are reported too.
    over = base if isinstance(base, Policy) else default_policy()
    profiles, errors = build_profiles(document.get("profiles"), over.to_document(), _validate)
    if isinstance(base, list):
        errors = base + errors
    if errors:
        raise PolicyError(errors)
    assert isinstance(base, Policy)
    if not profiles:
        return base
    with_profiles = Policy.model_validate(base_document)
    with_profiles._profiles = profiles
    return with_profiles.warm()


def _validate(document: dict[str, Any]) -> Policy | list[str]:
    try:
        return Policy.model_validate(document).warm()
    except ValidationError as exc:
        return [describe_error(e) for e in exc.errors()]


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

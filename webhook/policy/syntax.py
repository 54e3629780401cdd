"""Kubernetes name syntax (label keys and values) and glob patterns.

Label keys are an optional DNS-subdomain prefix (at most 253 characters) and a
``/``, then a name of at most 63 characters; values are at most 63 characters.
Both follow apimachinery's ``IsQualifiedName`` / ``IsValidLabelValue``.
"""

from __future__ import annotations

import fnmatch
import re

_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"label key {key!r}: prefix part must be non-empty"
        if len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix):
            return f"label key {key!r}: prefix must be a DNS subdomain of at most 253 characters"
    if not name:
        return f"label key {key!r}: name part must be non-empty"
    if len(name) > 63 or not _NAME.fullmatch(name):
        return (
            f"label key {key!r}: name part must be at most 63 characters of alphanumerics, "
            "'-', '_' or '.', starting and ending with an alphanumeric"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if value == "":
        return None
    if len(value) > 63 or not _NAME.fullmatch(value):
        return (
            f"label value {value!r}: must be at most 63 characters of alphanumerics, "
            "'-', '_' or '.', starting and ending with an alphanumeric"
        )
    return None


def compile_globs(patterns: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """One regex that matches any of the shell-style ``patterns`` (case-sensitive)."""
    if not patterns:
        return re.compile(r"(?!)")
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))

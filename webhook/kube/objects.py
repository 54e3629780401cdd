"""What the caches keep of an object (SPEC §6): the reducers from a raw JSON object
(as the apiserver sends it) to its cache key and the little the rules read.

Shared by the watch-fed caches (``kube.facts``) and audit's one-shot lists
(``kube.pods``), so both keep exactly the same facts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from webhook.kube.client import EMPTY_MAP, Labels


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def string_map(value: object, keep: Callable[[str], bool] | None = None) -> Labels:
    if not isinstance(value, dict) or not value:
        return EMPTY_MAP
    kept = {
        sys.intern(k): v  # keys repeat across objects: one copy each (issue 13, <= 0.5 KiB)
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, str) and (keep is None or keep(k))
    }
    return MappingProxyType(kept) if kept else EMPTY_MAP


def namespace_key(obj: Mapping[str, Any]) -> str | None:
    name = metadata_of(obj).get("name")
    return sys.intern(name) if isinstance(name, str) and name else None


def namespace_labels(obj: Mapping[str, Any]) -> Labels:
    return string_map(metadata_of(obj).get("labels"))


def service_account_key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    metadata = metadata_of(obj)
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if isinstance(namespace, str) and namespace and isinstance(name, str) and name:
        return sys.intern(namespace), name  # shared by every account of the namespace
    return None


def annotations_keeper(prefixes: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Labels]:
    def keep(key: str) -> bool:
        return key.startswith(prefixes)

    def annotations(obj: Mapping[str, Any]) -> Labels:
        return string_map(metadata_of(obj).get("annotations"), keep)

    return annotations

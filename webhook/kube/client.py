"""Loading the Kubernetes API client (in-cluster or kubeconfig), the constants the
caches share, and the metrics seam they report through."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol

import kubernetes

log = logging.getLogger(__name__)

NAMESPACES: Final = "namespaces"
SERVICE_ACCOUNTS: Final = "serviceaccounts"

# The annotations the identity providers' admission webhooks read (EKS IRSA,
# GKE Workload Identity, Azure Workload Identity): §4.5 judges these.
IDENTITY_ANNOTATION_PREFIXES: Final = (
    "eks.amazonaws.com/",
    "iam.gke.io/",
    "azure.workload.identity/",
)

EMPTY_MAP: Final[Mapping[str, str]] = MappingProxyType({})
HTTP_GONE: Final = 410
HTTP_NOT_FOUND: Final = 404

Labels = Mapping[str, str]
ListCall = Callable[..., Any]


# --- client ----------------------------------------------------------------


class KubeConfigError(Exception):
    """No usable API configuration: no kubeconfig found, or an unusable one."""


def in_cluster() -> bool:
    """Running in a pod (the kubelet sets KUBERNETES_SERVICE_HOST)?"""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def load_api_client(kubeconfig: Path | None) -> kubernetes.client.ApiClient:
    """An API client: ``kubeconfig`` when given, else in-cluster config when
    running in a pod, else the default kubeconfig ($KUBECONFIG, ~/.kube/config).

    The in-cluster loader re-reads the projected token file when it expires.
    Raises KubeConfigError when no configuration can be loaded.
    """
    configuration = kubernetes.client.Configuration()
    # Untyped in some client versions, typed in others: call through Any.
    loaders: Any = kubernetes.config
    try:
        if kubeconfig is None and in_cluster():
            loaders.load_incluster_config(client_configuration=configuration)
        else:
            loaders.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                client_configuration=configuration,
            )
    except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
        where = (
            str(kubeconfig)
            if kubeconfig is not None
            else ("in-cluster" if in_cluster() else "default kubeconfig")
        )
        raise KubeConfigError(f"{where}: {exc}") from exc
    return kubernetes.client.ApiClient(configuration)


# --- metrics seam ----------------------------------------------------------


class KubeMetrics(Protocol):
    """What the caches report. Called from the cache and lookup threads, so an
    implementation must be thread-safe (prometheus_client's collectors are).
    ``kind`` is ``"namespaces"`` or ``"serviceaccounts"``."""

    def watch_restart(self, kind: str) -> None: ...

    def lookup_error(self, kind: str) -> None: ...

    def cache_size(self, kind: str, size: int) -> None: ...

    def synced(self, kind: str, synced: bool) -> None: ...


class NullKubeMetrics:
    def watch_restart(self, kind: str) -> None:
        pass

    def lookup_error(self, kind: str) -> None:
        pass

    def cache_size(self, kind: str, size: int) -> None:
        pass

    def synced(self, kind: str, synced: bool) -> None:
        pass

"""Runtime knobs of ``serve`` (from flags, or their ``TPW_*`` environment twins)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_BODY_BYTES = 7 * 1024 * 1024  # an UPDATE review carries two objects of up to 3 MiB
DRAIN_TIMEOUT = 10.0  # seconds in-flight requests get after the grace period
EXIT_CONFIG = 2  # serve could not start (policy, certificate, listener): no use retrying


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8443
    policy_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None
    metrics_port: int = 9090  # 0: no metrics listener
    workers: int = 1
    shutdown_grace: float = 5.0
    kubeconfig: Path | None = None
    no_kube: bool = False
    certs_dir: Path = Path("certs")
    reload_interval: float = 1.0  # seconds between checks of the policy and certificate files
    body_timeout: float = 10.0  # seconds a client may take to send its body
    worker_index: int = 0
    reuse_port: bool = False

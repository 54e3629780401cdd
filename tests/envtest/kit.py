"""A real etcd + kube-apiserver from ``$KUBEBUILDER_ASSETS`` (the envtest convention).

``Cluster.start(directory)`` writes its own PKI with ``cryptography`` (a CA, the
apiserver's serving pair for 127.0.0.1, an admin client certificate in
``system:masters``, a key for service-account tokens), starts etcd and
kube-apiserver on free ports, waits for ``/readyz`` and writes an admin
kubeconfig. ``stop`` ends both (SIGTERM, then SIGKILL) and is idempotent;
``restart_apiserver`` stops the apiserver and starts it again on the same port
with the same etcd (the outage a webhook's watches must ride out).

No scheduler, controller manager or kubelet: pods are stored and stay Pending,
which is all an admission webhook needs. The ServiceAccount admission plugin is
off (without the token controller it rejects pods whose account has no token);
``--allow-privileged`` is on, as on real clusters, so a privileged pod reaches
the admission webhooks instead of failing validation first.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
SKIP_REASON = (
    f"{ASSETS_VARIABLE} is not set: no real kube-apiserver for the envtest tests "
    '(export KUBEBUILDER_ASSETS="$(../shared/envtest/install.sh)" or `setup-envtest use 1.28 -p path`)'
)
HOST = "127.0.0.1"


def assets() -> Path:
    """The envtest binaries folder; the calling test is skipped, naming the
    variable, when it is unset or empty."""
    raw = os.environ.get(ASSETS_VARIABLE, "").strip()
    if not raw:
        pytest.skip(SKIP_REASON)
    return Path(raw)


# --------------------------------------------------------------------------- PKI


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "EC PRIVATE KEY": what --service-account-key-file reads
        serialization.NoEncryption(),
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usages: tuple[x509.ObjectIdentifier, ...] = (),
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if ips or dns:
        names: list[x509.GeneralName] = [x509.IPAddress(ip_address(ip)) for ip in ips]
        names += [x509.DNSName(name) for name in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path


def write_pki(directory: Path) -> Pki:
    """The apiserver's CA (serving and client), serving pair, admin pair and SA key."""
    directory.mkdir(parents=True, exist_ok=True)

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
        (directory / f"{name}.key").write_bytes(_pem_key(key))
        (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return directory / f"{name}.crt"

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envtest-ca")])
    ca = write("ca", _certificate(ca_name, ca_key, None, ca=True), ca_key)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key,
        (ca_name, ca_key),
        usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        ips=(HOST, "10.0.0.1"),
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
    )
    serving_cert = write("apiserver", serving, serving_key)
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _certificate(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "envtest-admin"),
            ]
        ),
        admin_key,
        (ca_name, ca_key),
        usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    admin_cert = write("admin", admin, admin_key)
    sa_key = directory / "service-account.key"
    sa_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    return Pki(
        ca=ca,
        serving_cert=serving_cert,
        serving_key=directory / "apiserver.key",
        admin_cert=admin_cert,
        admin_key=directory / "admin.key",
        service_account_key=sa_key,
    )


# --------------------------------------------------------------------------- kubeconfig


def kubeconfig_document(
    server: str, ca: Path, user: dict[str, Any], name: str = "envtest"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


# --------------------------------------------------------------------------- processes


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after `timeout`; always reaped."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Cluster:
    """etcd + kube-apiserver on free ports under `directory`."""

    directory: Path
    binaries: Path
    pki: Pki
    apiserver_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, directory: Path, binaries: Path, timeout: float = 90) -> Cluster:
        cluster = cls(directory, binaries, write_pki(directory / "pki"))
        try:
            cluster._start_etcd()
            cluster.start_apiserver(timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_document(
                    cluster.url,
                    cluster.pki.ca,
                    {
                        "client-certificate": str(cluster.pki.admin_cert),
                        "client-key": str(cluster.pki.admin_key),
                    },
                )
            )
        )
        return cluster

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``system:masters``)."""
        return self.directory / "admin.kubeconfig"

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with a bearer token (a service account's)."""
        path.write_text(
            yaml.safe_dump(kubeconfig_document(self.url, self.pki.ca, {"token": token}))
        )
        return path

    def _start_etcd(self) -> None:
        data = self.directory / "etcd-data"
        peer = f"http://{HOST}:{self.etcd_peer_port}"
        client = f"http://{HOST}:{self.etcd_port}"
        with (self.directory / "etcd.log").open("ab") as log:
            self.etcd = subprocess.Popen(
                [
                    str(self.binaries / "etcd"),
                    f"--data-dir={data}",
                    "--name=default",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=default={peer}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_apiserver(self, timeout: float = 90) -> None:
        assert self.apiserver is None or self.apiserver.poll() is not None
        pki = self.pki
        with (self.directory / "kube-apiserver.log").open("ab") as log:
            self.apiserver = subprocess.Popen(
                [
                    str(self.binaries / "kube-apiserver"),
                    f"--etcd-servers=http://{HOST}:{self.etcd_port}",
                    f"--secure-port={self.apiserver_port}",
                    f"--bind-address={HOST}",
                    f"--advertise-address={HOST}",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca}",
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki.service_account_key}",
                    f"--service-account-signing-key-file={pki.service_account_key}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--endpoint-reconciler-type=none",
                    "--allow-privileged=true",
                    "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                    "--disable-admission-plugins=ServiceAccount",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def stop_apiserver(self) -> None:
        _stop(self.apiserver)

    def restart_apiserver(self, timeout: float = 90) -> None:
        self.stop_apiserver()
        self.start_apiserver(timeout)

    def stop(self) -> None:
        """Stop both processes (idempotent); the apiserver first, then its etcd."""
        try:
            _stop(self.apiserver)
        finally:
            _stop(self.etcd)

    def admin_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def get(self, path: str) -> tuple[int, str]:
        """GET `path` as the admin: the status and the body."""
        connection = http.client.HTTPSConnection(
            HOST, self.apiserver_port, context=self.admin_context(), timeout=5
        )
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def readyz(self) -> str | None:
        """The body of GET /readyz when it answers 200, else None."""
        try:
            status, body = self.get("/readyz")
        except (OSError, http.client.HTTPException):
            return None
        return body if status == 200 else None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if process is not None and process.poll() is not None:
                    raise AssertionError(
                        f"{name} exited {process.returncode}:\n"
                        + _tail(self.directory / f"{name}.log")
                    )
            if self.readyz() == "ok":
                return
            time.sleep(0.2)
        raise AssertionError(
            f"kube-apiserver not ready in {timeout}s:\n"
            + _tail(self.directory / "kube-apiserver.log")
        )

"""webhook.certs and webhook.serving.tls: issuing certificates, serving them, and rotating them under live TLS traffic.

Every handshake here is real: a server on 127.0.0.1 (asyncio streams, and once the
aiohttp stack the webhook runs on) with `ServerCertificate.ssl_context`, and clients
that trust the generated CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import socket
import ssl
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.serving_kit import issue_client_cert
from webhook.certs import (
    DEV_SANS,
    CertificateError,
    CertificateFiles,
    CertsResult,
    ensure_dev_certificate,
    parse_duration,
    write_certificates,
)
from webhook.serving.tls import ServerCertificate

SERVICE_HOST = "task-pod-webhook.task-pod-webhook.svc"
DEFAULT_NAMES = {
    "task-pod-webhook",
    "task-pod-webhook.task-pod-webhook",
    "task-pod-webhook.task-pod-webhook.svc",
    "task-pod-webhook.task-pod-webhook.svc.cluster.local",
}
PKI_SANS = ("127.0.0.1",)  # the `pki` fixture's serving pairs, so clients may dial the IP
TIMEOUT = 5.0


# --------------------------------------------------------------------------- helpers


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans_of(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(ext.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return dns, ips


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(files: CertificateFiles) -> dict[str, bytes]:
    return {
        name: getattr(files, name).read_bytes() for name in ("ca_cert", "ca_key", "cert", "key")
    }


def new_serving_pair(pki: CertsResult, staging: Path) -> tuple[Path, Path, int]:
    """A fresh serving pair signed by `pki`'s CA, written into `staging` (not yet in place)."""
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.files.ca_cert, staging / "ca.crt")
    shutil.copy(pki.files.ca_key, staging / "ca.key")
    (staging / "tls.crt").unlink(missing_ok=True)
    result = write_certificates(staging, extra_sans=PKI_SANS)
    assert result.issued_serving
    assert not result.issued_ca
    return result.files.cert, result.files.key, load_cert(result.files.cert).serial_number


def client_context(ca_file: Path, client_pair: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if client_pair is not None:
        context.load_cert_chain(*client_pair)
    return context


@dataclass
class EchoServer:
    """A line-echo TLS server; `served` records each connection whose handshake completed."""

    port: int
    served: list[int] = field(default_factory=list)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def peer_serial(self) -> int:
        ssl_object = self.writer.get_extra_info("ssl_object")
        return x509.load_der_x509_certificate(
            ssl_object.getpeercert(binary_form=True)
        ).serial_number

    async def ping(self, payload: bytes = b"ping\n") -> bytes:
        self.writer.write(payload)
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await self.writer.wait_closed()


async def connect(
    server: EchoServer, context: ssl.SSLContext, server_hostname: str = SERVICE_HOST
) -> Connection:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname=server_hostname
        ),
        TIMEOUT,
    )
    return Connection(reader, writer)


StartServer = Callable[[ssl.SSLContext], Awaitable[EchoServer]]


async def is_refused(server: EchoServer, context: ssl.SSLContext) -> bool:
    """True when the server does not serve this client (handshake or first read fails)."""
    served_before = len(server.served)
    try:
        connection = await connect(server, context)
    except (ssl.SSLError, ConnectionError):
        return len(server.served) == served_before
    try:
        reply = await connection.ping()
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        reply = b""
    finally:
        await connection.close()
    return reply == b"" and len(server.served) == served_before


@pytest.fixture
async def serve() -> AsyncIterator[StartServer]:
    servers: list[asyncio.Server] = []

    async def start(context: ssl.SSLContext) -> EchoServer:
        echo = EchoServer(port=0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            echo.served.append(id(writer))
            try:
                while line := await reader.readline():
                    writer.write(line)
                    await writer.drain()
            except (ssl.SSLError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        echo.port = server.sockets[0].getsockname()[1]
        return echo

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def pki(tmp_path: Path) -> CertsResult:
    return write_certificates(tmp_path / "pki", extra_sans=PKI_SANS)


# --------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", timedelta(hours=720)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("10d", timedelta(days=10)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "720", "h", "1.5h", "-1h", "30ms", "1m1h", "1h 30m", " 720h", "10w", "720H", "soon"],
)
def test_parse_duration_rejects_with_a_message_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)
    assert "720h" in str(caught.value)  # the message shows the expected form


def test_parse_duration_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("9" * 20 + "d")


# --------------------------------------------------------------------------- write_certificates


def test_writes_ca_and_serving_certificate_with_sans_and_private_modes(tmp_path: Path) -> None:
    out = tmp_path / "new" / "certs"
    result = write_certificates(
        out,
        service="hook",
        namespace="airflow",
        extra_sans=("127.0.0.1", "::1", "Hook.Example.COM"),
    )

    assert result.issued_ca
    assert result.issued_serving
    assert result.files == CertificateFiles(
        ca_cert=out / "ca.crt", ca_key=out / "ca.key", cert=out / "tls.crt", key=out / "tls.key"
    )
    assert mode_of(out) == 0o700
    assert mode_of(result.files.ca_key) == 0o600
    assert mode_of(result.files.key) == 0o600
    assert base64.b64decode(result.ca_bundle) == result.files.ca_cert.read_bytes()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    ca = load_cert(result.files.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)

    serving = load_cert(result.files.cert)
    serving.verify_directly_issued_by(ca)
    dns, ips = sans_of(serving)
    assert dns == {
        "hook",
        "hook.airflow",
        "hook.airflow.svc",
        "hook.airflow.svc.cluster.local",
        "hook.example.com",
    }
    assert ips == {"127.0.0.1", "::1"}
    assert (
        serving.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hook.airflow.svc"
    )
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    validity = serving.not_valid_after_utc - serving.not_valid_before_utc
    assert timedelta(days=365) <= validity <= timedelta(days=366)
    key = serialization.load_pem_private_key(result.files.key.read_bytes(), password=None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == serving.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_second_run_keeps_valid_files_and_force_reissues_both(tmp_path: Path) -> None:
    first = write_certificates(tmp_path)
    before = snapshot(first.files)

    again = write_certificates(tmp_path)
    assert not again.issued_ca
    assert not again.issued_serving
    assert snapshot(again.files) == before
    assert again.ca_bundle == first.ca_bundle

    forced = write_certificates(tmp_path, force=True)
    assert forced.issued_ca
    assert forced.issued_serving
    after = snapshot(forced.files)
    assert all(after[name] != before[name] for name in before)
    assert forced.ca_bundle != first.ca_bundle
    assert mode_of(forced.files.key) == 0o600


@pytest.mark.parametrize(
    ("days_later", "reissued"),
    [(300, False), (340, True)],  # the serving cert (1 year) has 65 vs 25 days left; renew 30d
)
def test_renew_before_reissues_only_the_serving_certificate(
    tmp_path: Path, days_later: int, reissued: bool
) -> None:
    now = datetime.now(UTC)
    first = write_certificates(tmp_path, now=now)
    before = snapshot(first.files)

    later = write_certificates(
        tmp_path, renew_before=timedelta(hours=720), now=now + timedelta(days=days_later)
    )

    assert not later.issued_ca
    assert later.issued_serving is reissued
    after = snapshot(later.files)
    assert (after["ca_cert"], after["ca_key"]) == (before["ca_cert"], before["ca_key"])
    assert (after["cert"] != before["cert"]) is reissued
    load_cert(later.files.cert).verify_directly_issued_by(load_cert(later.files.ca_cert))


def _drop_cert(files: CertificateFiles, other: CertificateFiles) -> None:
    files.cert.unlink()


def _corrupt_key(files: CertificateFiles, other: CertificateFiles) -> None:
    files.key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")


def _key_of_another_pair(files: CertificateFiles, other: CertificateFiles) -> None:
    shutil.copy(other.key, files.key)


def _pair_from_another_ca(files: CertificateFiles, other: CertificateFiles) -> None:
    shutil.copy(other.cert, files.cert)
    shutil.copy(other.key, files.key)


@pytest.mark.parametrize(
    "damage", [_drop_cert, _corrupt_key, _key_of_another_pair, _pair_from_another_ca]
)
def test_broken_serving_pair_is_reissued_and_the_ca_kept(
    tmp_path: Path, damage: Callable[[CertificateFiles, CertificateFiles], None]
) -> None:
    first = write_certificates(tmp_path / "a")
    other = write_certificates(tmp_path / "b")
    damage(first.files, other.files)
    ca_before = first.files.ca_cert.read_bytes()

    again = write_certificates(tmp_path / "a")

    assert again.issued_serving
    assert not again.issued_ca
    assert again.files.ca_cert.read_bytes() == ca_before
    load_cert(again.files.cert).verify_directly_issued_by(load_cert(again.files.ca_cert))


def test_missing_san_reissues_the_serving_certificate(tmp_path: Path) -> None:
    write_certificates(tmp_path)
    again = write_certificates(tmp_path, extra_sans=("webhook.example.com", "10.0.0.7"))
    assert again.issued_serving
    assert not again.issued_ca
    dns, ips = sans_of(load_cert(again.files.cert))
    assert dns == DEFAULT_NAMES | {"webhook.example.com"}
    assert ips == {"10.0.0.7"}
    # and the same names again are satisfied
    assert not write_certificates(tmp_path, extra_sans=("10.0.0.7",)).issued_serving


def test_ca_whose_key_does_not_match_is_reissued_with_the_serving_certificate(
    tmp_path: Path,
) -> None:
    first = write_certificates(tmp_path / "a")
    other = write_certificates(tmp_path / "b")
    shutil.copy(other.files.ca_key, first.files.ca_key)

    again = write_certificates(tmp_path / "a")

    assert again.issued_ca
    assert again.issued_serving
    assert again.ca_bundle != first.ca_bundle
    load_cert(again.files.cert).verify_directly_issued_by(load_cert(again.files.ca_cert))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_sans": ("not a name",)}, "SAN 'not a name'"),
        ({"extra_sans": ("",)}, "SAN ''"),
        ({"service": "Bad_Service"}, "service 'Bad_Service'"),
        ({"namespace": "x" * 64}, "namespace"),
    ],
)
def test_bad_names_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_certificates(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_dev_certificate_has_local_names_and_is_reused(tmp_path: Path) -> None:
    files = ensure_dev_certificate(tmp_path / "certs")
    dns, ips = sans_of(load_cert(files.cert))
    assert dns == DEFAULT_NAMES | {"localhost"}
    assert ips == {"127.0.0.1", "::1"}
    assert set(DEV_SANS) == {"localhost", "127.0.0.1", "::1"}
    assert mode_of(files.key) == 0o600
    before = snapshot(files)
    assert ensure_dev_certificate(tmp_path / "certs") == files
    assert snapshot(files) == before


# --------------------------------------------------------------------------- loading


def test_server_certificate_reports_what_it_serves(pki: CertsResult) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    cert = load_cert(pki.files.cert)
    assert certificate.serial == cert.serial_number
    assert certificate.not_after == cert.not_valid_after_utc
    assert certificate.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert certificate.ssl_context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("break_it", "named"),
    [
        (lambda f: f.cert.unlink(), "cert"),
        (lambda f: f.cert.write_bytes(b"garbage"), "cert"),
        (lambda f: f.key.write_bytes(b"garbage"), "key"),
        (lambda f: shutil.copy(f.ca_key, f.key), "key"),  # a key that does not match
    ],
    ids=["missing", "garbage-cert", "garbage-key", "mismatched-key"],
)
def test_unusable_files_raise_certificate_error_naming_the_file(
    pki: CertsResult, break_it: Callable[[CertificateFiles], object], named: str
) -> None:
    break_it(pki.files)
    with pytest.raises(CertificateError) as caught:
        ServerCertificate(pki.files.cert, pki.files.key)
    assert isinstance(caught.value, ValueError)
    assert str(getattr(pki.files, named)) in str(caught.value)


def test_unusable_client_ca_raises_certificate_error(pki: CertsResult, tmp_path: Path) -> None:
    bad_ca = tmp_path / "client-ca.crt"
    bad_ca.write_text("not a certificate")
    with pytest.raises(CertificateError, match=r"client-ca\.crt"):
        ServerCertificate(pki.files.cert, pki.files.key, bad_ca)


# --------------------------------------------------------------------------- handshakes


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_client_trusting_the_ca_sees_the_serving_certificate(
    pki: CertsResult, serve: StartServer, max_version: ssl.TLSVersion
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    server = await serve(certificate.ssl_context)
    context = client_context(pki.files.ca_cert)  # verifies the chain and the hostname
    context.maximum_version = max_version

    connection = await connect(server, context)
    try:
        assert connection.peer_serial == certificate.serial
        assert await connection.ping() == b"ping\n"
    finally:
        await connection.close()


async def test_client_sending_no_sni_gets_the_certificate_in_force(
    pki: CertsResult, serve: StartServer, tmp_path: Path
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    names_seen: list[object] = []
    select = certificate.ssl_context.sni_callback
    assert select is not None

    # typeshed says str; OpenSSL passes None when the client sent no SNI
    def spy(ssl_object: ssl.SSLObject, name: str, context: ssl.SSLContext) -> int | None:
        names_seen.append(name)
        return select(ssl_object, name, context)

    certificate.ssl_context.sni_callback = spy
    server = await serve(certificate.ssl_context)
    context = client_context(pki.files.ca_cert)
    context.check_hostname = False  # no hostname, so no SNI: the callback must still pick the pair

    first = await connect(server, context, server_hostname="")
    assert first.peer_serial == certificate.serial
    await first.close()

    cert, key, new_serial = new_serving_pair(pki, tmp_path / "staging")
    os.replace(cert, pki.files.cert)
    os.replace(key, pki.files.key)
    assert certificate.reload_if_changed() is True

    second = await connect(server, context, server_hostname="")
    assert second.peer_serial == new_serial
    await second.close()
    assert names_seen == [None, None]


def test_unchanged_content_is_not_a_change(pki: CertsResult) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    assert certificate.reload_if_changed() is None
    os.utime(pki.files.cert, (0, 0))  # a new mtime alone is no rotation
    pki.files.key.write_bytes(pki.files.key.read_bytes())
    assert certificate.reload_if_changed() is None


async def _rotation_keeps_old_connections(
    certificate: ServerCertificate,
    server: EchoServer,
    ca_file: Path,
    rotate: Callable[[], int],
) -> None:
    context = client_context(ca_file)
    old_serial = certificate.serial
    kept = await connect(server, context)
    try:
        assert kept.peer_serial == old_serial
        assert await kept.ping(b"before\n") == b"before\n"

        new_serial = rotate()
        assert new_serial != old_serial
        assert certificate.reload_if_changed() is True
        assert certificate.serial == new_serial
        assert certificate.reload_if_changed() is None

        fresh = await connect(server, context)
        assert fresh.peer_serial == new_serial
        assert await fresh.ping() == b"ping\n"
        await fresh.close()

        # the keep-alive connection from before the rotation is untouched
        assert await kept.ping(b"after\n") == b"after\n"
        assert kept.peer_serial == old_serial
    finally:
        await kept.close()


async def test_rotation_by_rename_serves_new_connections_and_keeps_open_ones(
    pki: CertsResult, serve: StartServer, tmp_path: Path
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    server = await serve(certificate.ssl_context)

    def rotate() -> int:
        cert, key, serial = new_serving_pair(pki, tmp_path / "staging")
        os.replace(key, pki.files.key)
        os.replace(cert, pki.files.cert)
        return serial

    await _rotation_keeps_old_connections(certificate, server, pki.files.ca_cert, rotate)


def _secret_volume(root: Path, version: str, files: dict[str, Path]) -> None:
    """Lay out (or update) a Kubernetes Secret volume: <root>/..<version>/ + ..data symlink."""
    root.mkdir(exist_ok=True)
    target = root / f"..{version}"
    target.mkdir()
    for name, source in files.items():
        shutil.copy(source, target / name)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(target.name)
    previous = (root / "..data").resolve() if (root / "..data").is_symlink() else None
    os.replace(tmp_link, root / "..data")  # the atomic swap the kubelet does
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    if previous is not None:
        shutil.rmtree(previous)


async def test_rotation_by_secret_volume_symlink_swap(
    pki: CertsResult, serve: StartServer, tmp_path: Path
) -> None:
    volume = tmp_path / "secret"
    _secret_volume(volume, "2024_01_01", {"tls.crt": pki.files.cert, "tls.key": pki.files.key})
    certificate = ServerCertificate(volume / "tls.crt", volume / "tls.key")
    assert certificate.serial == load_cert(pki.files.cert).serial_number
    server = await serve(certificate.ssl_context)

    def rotate() -> int:
        cert, key, serial = new_serving_pair(pki, tmp_path / "staging")
        _secret_volume(volume, "2024_02_01", {"tls.crt": cert, "tls.key": key})
        return serial

    await _rotation_keeps_old_connections(certificate, server, pki.files.ca_cert, rotate)


def _garbage(cert: Path, key: Path, other: CertsResult) -> None:
    cert.write_bytes(b"\x00\x01 definitely not PEM")


def _half_written(cert: Path, key: Path, other: CertsResult) -> None:
    data = cert.read_bytes()
    cert.write_bytes(data[: len(data) // 2])


def _mismatched_key(cert: Path, key: Path, other: CertsResult) -> None:
    shutil.copy(other.files.key, key)


def _empty_key(cert: Path, key: Path, other: CertsResult) -> None:
    key.write_bytes(b"")


def _missing_key(cert: Path, key: Path, other: CertsResult) -> None:
    key.unlink()


@pytest.mark.parametrize(
    "spoil", [_garbage, _half_written, _mismatched_key, _empty_key, _missing_key]
)
async def test_bad_replacement_keeps_the_old_pair_in_force(
    pki: CertsResult,
    serve: StartServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path, Path, CertsResult], None],
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    old_serial = certificate.serial
    server = await serve(certificate.ssl_context)
    context = client_context(pki.files.ca_cert)
    other = write_certificates(tmp_path / "other")

    cert, key, _ = new_serving_pair(pki, tmp_path / "staging")
    spoil(cert, key, other)
    if key.exists():
        os.replace(key, pki.files.key)
    else:
        pki.files.key.unlink()
    os.replace(cert, pki.files.cert)

    with caplog.at_level(logging.ERROR, logger="webhook.serving.tls"):
        assert certificate.reload_if_changed() is False
    assert f"keeping serial {old_serial:x} in force" in caplog.text
    assert str(pki.files.cert) in caplog.text or str(pki.files.key) in caplog.text
    assert certificate.serial == old_serial
    assert certificate.reload_if_changed() is None  # the same bad files are reported once

    connection = await connect(server, context)
    assert connection.peer_serial == old_serial
    assert await connection.ping() == b"ping\n"
    await connection.close()

    # once a good pair lands, it takes over
    cert, key, new_serial = new_serving_pair(pki, tmp_path / "staging2")
    os.replace(key, pki.files.key)
    os.replace(cert, pki.files.cert)
    assert certificate.reload_if_changed() is True
    connection = await connect(server, context)
    assert connection.peer_serial == new_serial
    await connection.close()


def test_files_changing_while_loaded_are_judged_on_the_next_poll(
    pki: CertsResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer still at work while a pair loads: nothing is swapped, nothing is reported."""
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    old_serial = certificate.serial
    first_cert, first_key, first_serial = new_serving_pair(pki, tmp_path / "staging")
    final_cert, final_key, final_serial = new_serving_pair(pki, tmp_path / "staging2")
    build = ServerCertificate._build  # the seam between reading the files and loading them

    def build_while_writer_continues(self: ServerCertificate, snapshot: object) -> object:
        if final_cert.exists():  # once: the next version lands mid-load
            os.replace(final_key, pki.files.key)
            os.replace(final_cert, pki.files.cert)
        return build(self, snapshot)  # type: ignore[arg-type]

    monkeypatch.setattr(ServerCertificate, "_build", build_while_writer_continues)
    os.replace(first_key, pki.files.key)
    os.replace(first_cert, pki.files.cert)

    assert certificate.reload_if_changed() is None
    assert certificate.serial == old_serial
    assert certificate.reload_if_changed() is True
    assert certificate.serial == final_serial != first_serial


async def test_watch_applies_rotations_and_reports_each_outcome(
    pki: CertsResult, serve: StartServer, tmp_path: Path
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key)
    server = await serve(certificate.ssl_context)
    outcomes: list[bool] = []

    async def wait_for_outcomes(count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(outcomes) < count:
                await asyncio.sleep(0.01)

    watcher = asyncio.create_task(certificate.watch(interval=0.02, on_reload=outcomes.append))
    try:
        cert, key, new_serial = new_serving_pair(pki, tmp_path / "staging")
        os.replace(key, pki.files.key)
        os.replace(cert, pki.files.cert)
        await wait_for_outcomes(1)
        assert outcomes == [True]
        connection = await connect(server, client_context(pki.files.ca_cert))
        assert connection.peer_serial == new_serial
        await connection.close()

        pki.files.cert.write_bytes(b"corrupt")
        await wait_for_outcomes(2)
        assert outcomes == [True, False]
        assert certificate.serial == new_serial
        assert not watcher.done()
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


# --------------------------------------------------------------------------- mTLS


@pytest.fixture
def client_pki(tmp_path: Path) -> Path:
    """A separate CA for client certificates (the apiserver's)."""
    return write_certificates(tmp_path / "client-pki").files.ca_cert.parent


async def test_mtls_serves_only_clients_with_a_certificate_from_the_client_ca(
    pki: CertsResult,
    client_pki: Path,
    serve: StartServer,
    tmp_path: Path,
) -> None:
    certificate = ServerCertificate(pki.files.cert, pki.files.key, client_pki / "ca.crt")
    assert certificate.ssl_context.verify_mode == ssl.CERT_REQUIRED
    server = await serve(certificate.ssl_context)
    stranger_ca = write_certificates(tmp_path / "stranger").files.ca_cert.parent

    assert await is_refused(server, client_context(pki.files.ca_cert))
    stranger = issue_client_cert(stranger_ca, tmp_path / "clients", "stranger")
    assert await is_refused(server, client_context(pki.files.ca_cert, stranger))

    apiserver = issue_client_cert(client_pki, tmp_path / "clients", "apiserver")
    connection = await connect(server, client_context(pki.files.ca_cert, apiserver))
    assert await connection.ping() == b"ping\n"
    assert connection.peer_serial == certificate.serial
    await connection.close()
    assert len(server.served) == 1


async def test_mtls_client_ca_is_reloaded_on_change(
    pki: CertsResult,
    client_pki: Path,
    serve: StartServer,
    tmp_path: Path,
) -> None:
    client_ca = tmp_path / "client-ca.crt"
    shutil.copy(client_pki / "ca.crt", client_ca)
    certificate = ServerCertificate(pki.files.cert, pki.files.key, client_ca)
    server = await serve(certificate.ssl_context)
    old_client = client_context(
        pki.files.ca_cert, issue_client_cert(client_pki, tmp_path / "clients", "old")
    )
    assert not await is_refused(server, old_client)

    new_pki = write_certificates(tmp_path / "client-pki-2").files.ca_cert.parent
    shutil.copy(new_pki / "ca.crt", client_ca)
    assert certificate.reload_if_changed() is True

    assert await is_refused(server, old_client)
    new_client = client_context(
        pki.files.ca_cert, issue_client_cert(new_pki, tmp_path / "clients", "new")
    )
    assert not await is_refused(server, new_client)


# --------------------------------------------------------------------------- aiohttp


async def test_aiohttp_site_rotates_without_dropping_keep_alive_connections(
    pki: CertsResult, tmp_path: Path
) -> None:
    """aiohttp, as the webhook serves: a kept-alive connection keeps its pair, a new one doesn't."""
    certificate = ServerCertificate(pki.files.cert, pki.files.key)

    # The body is held back until the client has looked at the connection: aiohttp
    # detaches `response.connection` as soon as a response is complete.
    body_gate = asyncio.Event()

    async def whoami(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(str(request.transport.get_extra_info("peername")[1]).encode())
        await body_gate.wait()
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    site = web.SockSite(runner, listener, ssl_context=certificate.ssl_context)
    await site.start()
    url = f"https://127.0.0.1:{port}/"
    context = client_context(pki.files.ca_cert)  # 127.0.0.1 is a SAN of the pki fixture

    async def get(session: aiohttp.ClientSession) -> tuple[str, int]:
        async with session.get(url) as response:
            assert response.connection is not None
            assert response.connection.transport is not None
            ssl_object = response.connection.transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True)
            body_gate.set()
            try:
                return await response.text(), x509.load_der_x509_certificate(der).serial_number
            finally:
                body_gate.clear()

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as kept:
            client_port, serial = await get(kept)
            assert serial == certificate.serial
            old_serial = serial

            cert, key, new_serial = new_serving_pair(pki, tmp_path / "staging")
            os.replace(key, pki.files.key)
            os.replace(cert, pki.files.cert)
            assert certificate.reload_if_changed() is True

            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as fresh:
                assert (await get(fresh))[1] == new_serial

            # the same keep-alive connection (same client port) still works, old pair
            assert await get(kept) == (client_port, old_serial)
    finally:
        await runner.cleanup()

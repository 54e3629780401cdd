"""Serving certificates and rotating them without a restart (SPEC §7).

`ServerCertificate` hands the HTTPS server one `ssl.SSLContext` whose
certificate follows the files on disk. The webhook sits in the apiserver's
admission path with `failurePolicy: Fail`, so rotation must never drop a request:

* The server's context (the *outer* one) holds no certificate. Its `sni_callback`
  runs for every ClientHello, with or without SNI (OpenSSL >= 1.1.1 calls the
  servername callback either way), and points the connection at the *inner*
  context currently in force. Each load builds a brand-new inner context, so a
  new handshake sees the new pair, a connection already open keeps the context
  it shook hands with, and a pair that fails to load never touches the one in
  force.
* Files are watched by content (a hash of the bytes, opening through symlinks),
  not by mtime or inotify: a Kubernetes Secret volume swaps a `..data` symlink,
  cert-manager rewrites files in place, and both must be seen.
* A pair is validated with `cryptography` (parses, key matches certificate)
  before `ssl` loads it, and the files are read again afterwards: if they moved
  underneath (a writer half-way through), nothing is swapped and the next poll
  looks again.

Treat `ServerCertificate.ssl_context` as read-only: after the switch, OpenSSL
takes the certificate, the client-certificate trust store and ALPN from the inner
context, so options set on the outer context by hand would silently not apply.

A pair that cannot be used raises ``webhook.certs.CertificateError`` at start-up;
after that a bad pair is logged and counted, and the pair in force stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
)

from webhook.certs import CertificateError, spki

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class _Snapshot:
    """The bytes of the watched files, read once; the digest identifies a version."""

    cert: bytes
    key: bytes
    client_ca: bytes | None

    @property
    def digest(self) -> bytes:
        sha = hashlib.sha256()
        for part in (self.cert, self.key, self.client_ca):
            sha.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
        return sha.digest()


@dataclass(frozen=True)
class _Loaded:
    """A pair in force: its handshake context and what it serves."""

    context: ssl.SSLContext
    serial: int
    not_after: datetime
    digest: bytes


class ServerCertificate:
    """The serving certificate, its SSL context, and its reload on rotation."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> None:
        self._cert_file = Path(cert_file)
        self._key_file = Path(key_file)
        self._client_ca_file = None if client_ca_file is None else Path(client_ca_file)
        self._lock = threading.Lock()
        self._loaded = self._load_initial()
        # The digest of the files as last examined, good or bad: a bad version is
        # reported once, not on every poll, and looked at again once it changes.
        self._seen: bytes = self._loaded.digest
        self.ssl_context: ssl.SSLContext = self._outer_context()

    @property
    def serial(self) -> int:
        """Serial number of the certificate in force."""
        return self._loaded.serial

    @property
    def not_after(self) -> datetime:
        """Expiry (UTC) of the certificate in force."""
        return self._loaded.not_after

    def reload_if_changed(self) -> bool | None:
        """Load the files again if their content changed.

        None: unchanged (or still being written); True: the new pair is in force;
        False: the changed files do not load, the old pair stays in force (logged).
        """
        with self._lock:
            return self._reload_if_changed()

    async def watch(
        self, interval: float = 1.0, on_reload: Callable[[bool], None] | None = None
    ) -> None:
        """Poll the files by content every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                outcome = await asyncio.to_thread(self.reload_if_changed)
                if outcome is not None and on_reload is not None:
                    on_reload(outcome)
            except Exception:
                # The watcher must outlive any surprise: without it, rotation stops.
                logger.exception("certificate watch: unexpected error, polling on")

    # -- internals

    def _reload_if_changed(self) -> bool | None:
        try:
            snapshot = self._read()
        except CertificateError as exc:
            marker = f"unreadable: {exc}".encode()
            if marker == self._seen:
                return None
            self._seen = marker
            self._log_failure(exc)
            return False
        digest = snapshot.digest
        if digest == self._seen:
            return None
        if digest == self._loaded.digest:
            self._seen = digest
            logger.info(
                "certificate files are back to the pair in force (serial %x)", self._loaded.serial
            )
            return None
        loaded: _Loaded | CertificateError
        try:
            loaded = self._build(snapshot)
        except CertificateError as exc:
            loaded = exc
        if self._moved_since(snapshot):
            return None  # a writer is still at work: judge the files on the next poll
        self._seen = digest
        if isinstance(loaded, CertificateError):
            self._log_failure(loaded)
            return False
        self._loaded = loaded
        logger.info(
            "certificate reloaded from %s: serial %x, valid until %s",
            self._cert_file,
            loaded.serial,
            loaded.not_after.isoformat(),
        )
        return True

    def _log_failure(self, exc: CertificateError) -> None:
        logger.error(
            "certificate reload failed, keeping serial %x in force: %s", self._loaded.serial, exc
        )

    def _load_initial(self) -> _Loaded:
        for _ in range(3):
            snapshot = self._read()
            loaded = self._build(snapshot)
            if not self._moved_since(snapshot):
                return loaded
        raise CertificateError(f"{self._cert_file}: the files kept changing while being loaded")

    def _read(self) -> _Snapshot:
        return _Snapshot(
            cert=_read_file(self._cert_file, "certificate"),
            key=_read_file(self._key_file, "private key"),
            client_ca=None
            if self._client_ca_file is None
            else _read_file(self._client_ca_file, "client CA"),
        )

    def _moved_since(self, snapshot: _Snapshot) -> bool:
        try:
            return self._read().digest != snapshot.digest
        except CertificateError:
            return True

    def _build(self, snapshot: _Snapshot) -> _Loaded:
        """A fresh context for `snapshot`, or CertificateError; the pair in force is untouched."""
        leaf = _parse_certificates(snapshot.cert, self._cert_file, "certificate")[0]
        key = _parse_private_key(snapshot.key, self._key_file)
        if spki(key.public_key()) != spki(leaf.public_key()):
            raise CertificateError(
                f"{self._key_file}: private key does not match the certificate in {self._cert_file}"
            )
        if leaf.not_valid_after_utc <= datetime.now(UTC):
            logger.warning(
                "%s: certificate expired at %s; clients will refuse it",
                self._cert_file,
                leaf.not_valid_after_utc.isoformat(),
            )
        context = _new_server_context()
        try:
            # ssl reads the files by path; _moved_since() checks they are still the
            # bytes that were validated above.
            context.load_cert_chain(self._cert_file, self._key_file)
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(
                f"{self._cert_file} with {self._key_file}: TLS cannot use this pair: {exc}"
            ) from exc
        if self._client_ca_file is not None and snapshot.client_ca is not None:
            _parse_certificates(snapshot.client_ca, self._client_ca_file, "client CA")
            context.verify_mode = ssl.CERT_REQUIRED
            try:
                context.load_verify_locations(cadata=snapshot.client_ca.decode("ascii"))
            except (ssl.SSLError, UnicodeDecodeError) as exc:
                raise CertificateError(
                    f"{self._client_ca_file}: cannot use as client CA: {exc}"
                ) from exc
        return _Loaded(
            context=context,
            serial=leaf.serial_number,
            not_after=leaf.not_valid_after_utc,
            digest=snapshot.digest,
        )

    def _outer_context(self) -> ssl.SSLContext:
        # No certificate of its own: should the callback ever not run, the handshake
        # fails loudly instead of serving a stale certificate.
        context = _new_server_context()
        if self._client_ca_file is not None:
            # The connection keeps the verify mode of the context it was created
            # from; the trust store comes from the inner context after the switch.
            context.verify_mode = ssl.CERT_REQUIRED
        context.sni_callback = self._select_context
        return context

    def _select_context(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        # Runs for every ClientHello, SNI or not; one attribute read, no I/O.
        ssl_object.context = self._loaded.context


def _new_server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc


def _parse_certificates(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        # cryptography's text is a FAQ link and a framing code; the file name says more
        raise CertificateError(
            f"{path}: no valid PEM {what} (empty, damaged or partly written)"
        ) from exc
    if not certificates:
        raise CertificateError(f"{path}: no PEM {what} in the file")
    return certificates


def _parse_private_key(data: bytes, path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted
        raise CertificateError(
            f"{path}: the private key is encrypted; an unencrypted key is needed"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(
            f"{path}: no valid PEM private key (empty, damaged, partly written or unsupported)"
        ) from exc

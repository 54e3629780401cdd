"""Issuing certificates (SPEC §8): a private CA and a serving certificate.

`write_certificates`, `ensure_dev_certificate`) writes a private CA and a
serving certificate for the webhook's Service names. Private keys are written 0600
through a temporary file and an atomic rename, and valid files are never
overwritten unless asked: a valid CA is reused, the serving certificate is
re-issued only when it is missing, broken, not signed by the CA, lacks a required
name, or expires within `renew_before`. Serving and rotating them is
``webhook.serving.tls``.

Exceptions::

    ValueError
     +-- CertificateError    a certificate, key or CA file that cannot be used;
                             the message names the file
    ValueError (plain)       parse_duration, and write_certificates for a bad
                             service, namespace or SAN
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEV_SANS",
    "CertificateError",
    "CertificateFiles",
    "CertsResult",
    "ensure_dev_certificate",
    "parse_duration",
    "write_certificates",
]

logger = logging.getLogger(__name__)

DEV_SANS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""Extra names of the development certificate that `serve` uses without TLS flags."""

CA_VALIDITY = timedelta(days=3650)
SERVING_VALIDITY = timedelta(days=365)
# Issued certificates start a little in the past so that a peer whose clock runs
# slightly behind does not see them as not yet valid.
_BACKDATE = timedelta(minutes=5)
_CN_MAX = 64


class CertificateError(ValueError):
    """A certificate, private key or CA file that cannot be used (the message names it)."""


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """Parse `720h`, `30m`, `90s`, `1h30m`, `10d` (units d, h, m, s, each once, in that order)."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected whole numbers with units d, h, m, s "
            "in that order, such as 720h, 30m, 90s, 1h30m or 10d"
        )
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too large") from None


# --------------------------------------------------------------------------- issuing


@dataclass(frozen=True)
class CertificateFiles:
    """Where `write_certificates` puts the CA and the serving pair."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, out_dir: Path) -> CertificateFiles:
        return cls(
            ca_cert=out_dir / "ca.crt",
            ca_key=out_dir / "ca.key",
            cert=out_dir / "tls.crt",
            key=out_dir / "tls.key",
        )


@dataclass(frozen=True)
class CertsResult:
    """What `write_certificates` did; `ca_bundle` is the base64 CA PEM (the caBundle value)."""

    files: CertificateFiles
    ca_bundle: str
    issued_ca: bool
    issued_serving: bool


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    pem: bytes


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(
    r"(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*"
)


def write_certificates(
    out_dir: Path,
    *,
    service: str = "task-pod-webhook",
    namespace: str = "task-pod-webhook",
    extra_sans: Sequence[str] = (),
    renew_before: timedelta = timedelta(hours=720),
    force: bool = False,
    now: datetime | None = None,
) -> CertsResult:
    """Write `ca.crt`, `ca.key`, `tls.crt`, `tls.key` in `out_dir`, keeping what is still valid.

    The CA is reused when its key matches and it is a CA that is not expiring within
    `renew_before` (a serving certificate never outlives its CA, so a CA close to
    its end could not give one that satisfies `renew_before`). Re-issuing the CA
    changes the caBundle, and always re-issues the serving certificate.
    """
    now = _utc(now)
    required = _required_sans(service, namespace, extra_sans)
    files = CertificateFiles.in_dir(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    authority = None if force else _reusable_authority(files, now, renew_before)
    issued_ca = authority is None
    if authority is None:
        authority = _issue_authority(service, now)
        _write_atomic(files.ca_key, _key_pem(authority.key), 0o600)
        _write_atomic(files.ca_cert, authority.pem, 0o644)
        logger.info("issued CA %s (serial %x)", files.ca_cert, authority.cert.serial_number)

    reason = "forced" if force else "new CA" if issued_ca else None
    if reason is None:
        reason = _serving_renewal_reason(files, authority, required, now, renew_before)
    if reason is not None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue_serving(
            authority, key, service=service, namespace=namespace, sans=required, now=now
        )
        _write_atomic(files.key, _key_pem(key), 0o600)
        _write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        logger.info(
            "issued serving certificate %s (serial %x): %s", files.cert, cert.serial_number, reason
        )

    return CertsResult(
        files=files,
        ca_bundle=base64.b64encode(authority.pem).decode("ascii"),
        issued_ca=issued_ca,
        issued_serving=reason is not None,
    )


def ensure_dev_certificate(out_dir: Path) -> CertificateFiles:
    """The certificate `serve` uses without TLS flags: created when missing, reused when valid."""
    return write_certificates(out_dir, extra_sans=DEV_SANS).files


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _required_sans(service: str, namespace: str, extra: Sequence[str]) -> list[x509.GeneralName]:
    for what, value in (("service", service), ("namespace", namespace)):
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(
                f"{what} {value!r} is not a DNS label (lower-case letters, digits and '-', "
                "at most 63 characters, starting and ending with a letter or digit)"
            )
    names: list[x509.GeneralName] = [
        x509.DNSName(service),
        x509.DNSName(f"{service}.{namespace}"),
        x509.DNSName(f"{service}.{namespace}.svc"),
        x509.DNSName(f"{service}.{namespace}.svc.cluster.local"),
    ]
    for value in extra:
        name = _general_name(value)
        if _name_key(name) not in {_name_key(existing) for existing in names}:
            names.append(name)
    return names


def _general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) <= 253 and _DNS_NAME.fullmatch(value):
        return x509.DNSName(value.lower())
    raise ValueError(f"SAN {value!r} is neither an IP address nor a valid DNS name")


def _name_key(name: x509.GeneralName) -> str:
    if isinstance(name, x509.IPAddress):
        return f"ip:{name.value}"
    return f"dns:{str(name.value).lower()}"


def _reusable_authority(
    files: CertificateFiles, now: datetime, renew_before: timedelta
) -> _Authority | None:
    try:
        pem = files.ca_cert.read_bytes()
        key_pem = files.ca_key.read_bytes()
    except FileNotFoundError:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        logger.warning("not reusing CA %s: %s", files.ca_cert, exc)
        return None
    if not isinstance(key, _ISSUER_KEY_TYPES):
        logger.warning(
            "not reusing CA %s: %s cannot sign certificates", files.ca_cert, files.ca_key
        )
        return None
    problem = None
    if spki(key.public_key()) != spki(cert.public_key()):
        problem = f"{files.ca_key} does not match {files.ca_cert}"
    elif not _is_ca(cert):
        problem = "it is not a CA (basicConstraints CA:true and keyUsage keyCertSign)"
    elif cert.not_valid_before_utc > now:
        problem = "it is not valid yet"
    elif cert.not_valid_after_utc - now <= renew_before:
        problem = f"it expires {cert.not_valid_after_utc:%Y-%m-%d}, within {renew_before}"
    if problem is not None:
        logger.warning("not reusing CA %s: %s", files.ca_cert, problem)
        return None
    return _Authority(cert=cert, key=key, pem=pem)


_ISSUER_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and usage.key_cert_sign


def _serving_renewal_reason(
    files: CertificateFiles,
    authority: _Authority,
    required: Sequence[x509.GeneralName],
    now: datetime,
    renew_before: timedelta,
) -> str | None:
    """Why the serving certificate must be issued again, or None when it is fine as it is."""
    try:
        cert_pem = files.cert.read_bytes()
        key_pem = files.key.read_bytes()
    except FileNotFoundError as exc:
        return f"{exc.filename} is missing"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"the pair does not parse ({exc})"
    if spki(key.public_key()) != spki(cert.public_key()):
        return f"{files.key} does not match {files.cert}"
    try:
        cert.verify_directly_issued_by(authority.cert)
    except (ValueError, TypeError, InvalidSignature):
        return f"it is not signed by the CA in {files.ca_cert}"
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it has no subjectAltName"
    present_keys = {_name_key(name) for name in present}
    missing = [_name_key(name) for name in required if _name_key(name) not in present_keys]
    if missing:
        return f"it lacks the names {', '.join(missing)}"
    if cert.not_valid_before_utc > now:
        return "it is not valid yet"
    if cert.not_valid_after_utc - now <= renew_before:
        return f"it expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z, within {renew_before}"
    return None


def _issue_authority(service: str, now: datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    # Like Kubernetes' own self-signed CAs: the name carries the issue time, so
    # successive CAs are told apart by name as well as by key.
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{service}-ca@{int(now.timestamp())}"[:_CN_MAX])]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return _Authority(cert=cert, key=key, pem=cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Digital signature always; certificate and CRL signing for a CA only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_serving(
    authority: _Authority,
    key: ec.EllipticCurvePrivateKey,
    *,
    service: str,
    namespace: str,
    sans: Sequence[x509.GeneralName],
    now: datetime,
) -> x509.Certificate:
    common_name = f"{service}.{namespace}.svc"
    if len(common_name) > _CN_MAX:  # the SANs carry the full names; CN is informational
        common_name = service
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + SERVING_VALIDITY, authority.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(authority.key, _signature_hash(authority.key))
    )


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write through a new file created with `mode` and rename it over `path`.

    Readers (a server watching the directory) see the old file or the new one,
    never a part; the key never exists with wider permissions, even for a moment.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed run may have another mode
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # not every filesystem can sync a directory; the rename is what matters
    finally:
        os.close(dir_fd)

"""Helpers of the production-serving tests (``tests/test_serving_*.py``).

Real processes, real TLS, real files: a volume laid out as the kubelet lays out
a Secret or ConfigMap mount (updated by swapping a ``..data`` symlink), a load
client that keeps sending reviews from a thread over new and kept-alive
connections and records every outcome, and a reader of the metrics port.
Every loop here is bounded in count and in time; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import itertools
import json
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonpatch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client.parser import text_string_to_metric_families

from tests import podkit
from tests.conftest import Server
from webhook.certs import CertsResult, write_certificates

HOST = "127.0.0.1"
LOCAL_SANS = ("127.0.0.1", "localhost")
JSON_HEADERS = {"Content-Type": "application/json"}


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- volumes


class AtomicVolume:
    """A directory updated like a kubelet Secret/ConfigMap volume.

    ``path/..<timestamp>/`` holds one version of the files, ``path/..data``
    points at it, and each visible file is ``path/NAME -> ..data/NAME``. A
    publish writes a new timestamped directory, swaps ``..data`` with a rename
    (atomic), and removes the previous version, as the kubelet's AtomicWriter.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True)
        self._versions = itertools.count()
        self._current: Path | None = None

    def publish(self, files: dict[str, bytes]) -> None:
        stamp = datetime.now(UTC).strftime("%Y_%m_%d_%H_%M_%S")
        version = self.path / f"..{stamp}.{next(self._versions):04d}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
        staged = self.path / "..data_tmp"
        staged.unlink(missing_ok=True)
        staged.symlink_to(version.name)
        os.replace(staged, self.path / "..data")
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        if self._current is not None:
            shutil.rmtree(self._current)
        self._current = version

    def file(self, name: str) -> Path:
        return self.path / name


# --------------------------------------------------------------------------- certificates


def issue_pki(directory: Path) -> CertsResult:
    """A CA and a serving pair that clients dialing 127.0.0.1 accept."""
    return write_certificates(directory, extra_sans=LOCAL_SANS)


def reissue_serving_pair(pki: CertsResult, staging: Path) -> CertsResult:
    """A new serving pair signed by the same CA (what cert-manager does on renewal).

    ``write_certificates(force=True)`` would also re-issue the CA, which clients
    trusting the old caBundle refuse; a staging directory holding only the CA
    gets a fresh serving pair from the CA in place."""
    staging.mkdir(parents=True)
    shutil.copy(pki.files.ca_cert, staging / "ca.crt")
    shutil.copy(pki.files.ca_key, staging / "ca.key")
    result = write_certificates(staging, extra_sans=LOCAL_SANS)
    assert result.issued_serving
    assert not result.issued_ca
    return result


def secret_files(pki: CertsResult) -> dict[str, bytes]:
    """The keys of a cert-manager Secret (ca.crt, tls.crt, tls.key)."""
    return {
        "ca.crt": pki.files.ca_cert.read_bytes(),
        "tls.crt": pki.files.cert.read_bytes(),
        "tls.key": pki.files.key.read_bytes(),
    }


def certificate_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def serial_of(path: Path) -> int:
    return certificate_of(path).serial_number


def peer_serial(sock: socket.socket | None) -> int:
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def issue_client_certificate(pki: CertsResult, out: Path, name: str) -> tuple[Path, Path]:
    """A clientAuth certificate signed by `pki`'s CA (an apiserver's, say)."""
    return issue_client_cert(pki.files.ca_cert.parent, out, name)


def issue_client_cert(ca_dir: Path, out: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (clientAuth) signed by the CA in `ca_dir` (ca.crt, ca.key)."""
    ca_cert = certificate_of(ca_dir / "ca.crt")
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = out / f"{name}.crt", out / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


# --------------------------------------------------------------------------- reviews


def review_body(uid: str, pod: dict[str, Any] | None = None) -> bytes:
    return json.dumps(podkit.review(pod or podkit.pod(), uid=uid)).encode()


def check_review(answer: Any, uid: str) -> str | None:
    """Why `answer` is not a valid AdmissionReview response for `uid` (None: it is)."""
    if not isinstance(answer, dict) or answer.get("kind") != "AdmissionReview":
        return f"not an AdmissionReview: {str(answer)[:200]}"
    response = answer.get("response")
    if not isinstance(response, dict) or response.get("uid") != uid:
        return f"uid not echoed: {str(response)[:200]}"
    if not isinstance(response.get("allowed"), bool):
        return f"no allowed: {str(response)[:200]}"
    return None


def patched_pod(pod: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """`pod` with the answer's JSON Patch applied."""
    response = answer["response"]
    if "patch" not in response:
        return copy.deepcopy(pod)
    operations = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(pod, operations)
    return result


# --------------------------------------------------------------------------- HTTP


def https_connection(
    port: int, context: ssl.SSLContext, timeout: float = 5.0
) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(HOST, port, context=context, timeout=timeout)


def exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def readyz_status(server: Server, context: ssl.SSLContext | None = None) -> int | None:
    """Status of GET /readyz on a new connection; None when no connection is possible."""
    connection = https_connection(server.port, context or server.context(), timeout=2.0)
    try:
        return exchange(connection, "GET", "/readyz")[0]
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


# --------------------------------------------------------------------------- metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample on http://127.0.0.1:PORT/metrics, keyed by (name, labels)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        status, _, data = exchange(connection, "GET", "/metrics")
    finally:
        connection.close()
    assert status == 200, data
    samples: Samples = {}
    for family in text_string_to_metric_families(data.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 when the series does not exist (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def try_scrape(port: int) -> Samples | None:
    try:
        return scrape(port)
    except (OSError, http.client.HTTPException):
        return None


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Outcome:
    """One request of the load client, as the client saw it."""

    index: int
    channel: str  # "new": a connection of its own; "kept": the one kept-alive connection
    started: float  # time.monotonic()
    finished: float
    status: int | None = None
    answer: Any = None
    error: str | None = None
    serial: int | None = None  # the server certificate this request's connection got
    connection: int | None = None  # identity of the kept-alive connection's socket

    @property
    def problem(self) -> str | None:
        """Why this is a failed request (None: HTTP 200 with a valid review for its uid)."""
        if self.error is not None:
            return self.error
        if self.status != 200:
            return f"HTTP {self.status}: {str(self.answer)[:200]}"
        return check_review(self.answer, f"load-{self.index}")


@dataclass
class LoadClient:
    """Sends reviews from a thread until stopped, over new and one kept-alive connection.

    Bounded: at most `max_requests` requests and `max_seconds` seconds.
    """

    port: int
    context: ssl.SSLContext
    channels: tuple[str, ...] = ("new", "kept")
    pod: dict[str, Any] = field(default_factory=podkit.pod)
    path: str = "/mutate"
    pause: float = 0.0  # between requests
    max_requests: int = 20_000
    max_seconds: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _kept: http.client.HTTPSConnection | None = None

    def start(self) -> LoadClient:
        self._thread = threading.Thread(target=self._run, name="load-client", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop sending (idempotent) and return every outcome."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "load client did not stop"
        return list(self.outcomes)

    def wait_for_requests(self, count: int, since: float = 0.0, timeout: float = 10.0) -> None:
        """Wait until `count` requests of every channel started after `since` have finished."""

        def enough() -> bool:
            done = [o for o in list(self.outcomes) if o.started >= since]
            return all(sum(o.channel == c for o in done) >= count for c in self.channels)

        wait_for(enough, timeout, f"{count} requests per channel")

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            channel = self.channels[index % len(self.channels)]
            body = review_body(f"load-{index}", self.pod)
            outcome = self._send(index, channel, body)
            self.outcomes.append(outcome)
            if outcome.error is not None:
                time.sleep(0.01)  # a refused connection returns at once: don't spin
            elif self.pause:
                time.sleep(self.pause)
        if self._kept is not None:
            self._kept.close()

    def _send(self, index: int, channel: str, body: bytes) -> Outcome:
        started = time.monotonic()
        serial = sock_id = None
        if channel == "kept":
            if self._kept is None:
                self._kept = https_connection(self.port, self.context)
            connection = self._kept
        else:
            connection = https_connection(self.port, self.context)
        try:
            if connection.sock is None:
                connection.connect()
            serial = peer_serial(connection.sock)
            sock_id = id(connection.sock)
            status, _, data = exchange(connection, "POST", self.path, body, JSON_HEADERS)
            try:
                answer: Any = json.loads(data)
            except ValueError:
                answer = data[:200]
            return Outcome(
                index, channel, started, time.monotonic(), status, answer, None, serial, sock_id
            )
        except (OSError, http.client.HTTPException) as exc:
            if channel == "kept":
                self._kept = None  # reconnect next time: and the outcome records the change
                connection.close()
            return Outcome(
                index,
                channel,
                started,
                time.monotonic(),
                error=f"{type(exc).__name__}: {exc}",
                serial=serial,
                connection=sock_id,
            )
        finally:
            if channel == "new":
                connection.close()


@contextlib.contextmanager
def running_load(load: LoadClient) -> Iterator[LoadClient]:
    load.start()
    try:
        yield load
    finally:
        load.stop()


# --------------------------------------------------------------------------- processes


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/*/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: split after it
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_records(server: Server) -> list[dict[str, Any]]:
    """The server's JSON log lines (the banner and anything else not JSON is skipped)."""
    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


def worker_pids(server: Server) -> list[int]:
    """The live worker processes of a ``--workers N`` supervisor."""
    return [
        pid
        for pid in children_of(server.process.pid)
        if "spawn_main" in cmdline(pid) and is_running(pid)
    ]


# --------------------------------------------------------------------------- process marks

MARK_VARIABLE = "TASK_POD_WEBHOOK_TEST_RUN"  # not TPW_*: the CLI reads those


def marked_processes(mark: str) -> dict[int, int]:
    """Live processes (pid -> parent pid) whose environment carries ``mark``: a server
    started with it and every process it started."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if needle in environ.split(b"\0") and fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


@contextlib.contextmanager
def no_process_left(mark: str) -> Iterator[None]:
    """Fails if a process carrying ``mark`` is still there 10 s after the block (an
    orphan when its parent is pid 1; a process exiting on its own, as multiprocessing's
    resource tracker once its last user is gone, gets that long); kills them anyway."""
    try:
        yield
    finally:
        deadline = time.monotonic() + 10.0
        while (left := marked_processes(mark)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    described = {pid: (parent, cmdline(pid)[:120]) for pid, parent in left.items()}
    assert not left, f"processes left running (pid: parent, command): {described}"

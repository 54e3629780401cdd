"""Shared fixtures: a real ``task-pod-webhook serve`` process over real TLS.

The server under test is the installed console script, started as a
subprocess on free ports with its own development certificate, exactly as
``make run`` starts it; the tests talk HTTPS to it with the CA it wrote.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# CI replays the same examples every run (a red CI must be reproducible);
# developers' runs explore new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(
    *args: str,
    cwd: Path = ROOT,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """The real CLI as a subprocess, without any TPW_* variable of the caller's."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TPW_")}
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        cwd=cwd,
        input=stdin,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    ca_file: Path
    workdir: Path
    log_file: Path
    _connections: list[http.client.HTTPSConnection] = field(default_factory=list)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(self, timeout: float = 10.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context(), timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | str]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read().decode()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data

    def review(self, body: dict[str, Any], path: str = "/mutate") -> dict[str, Any]:
        status, answer = self.request(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    def log(self) -> str:
        return self.log_file.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    kube: bool = False,
    ports: tuple[int, int] | None = None,
) -> Server:
    """``serve`` on free ports (or on ``ports``: HTTPS, metrics); without Kubernetes
    API access unless ``kube`` (then ``args`` name the ``--kubeconfig``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, metrics_port = ports or (free_port(), free_port())
    log_file = workdir / "server.log"
    command = [
        sys.executable,
        "-m",
        "webhook",
        "serve",
        *([] if kube else ["--no-kube"]),
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        "--certs-dir",
        str(workdir / "certs"),
        "--reload-interval",
        "0.2",
        *args,
    ]
    with log_file.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
    ca_file = workdir / "certs" / "ca.crt"
    if "--tls-cert-file" in args:
        ca_file = Path(args[args.index("--tls-cert-file") + 1]).parent / "ca.crt"
    server = Server(process, port, metrics_port, ca_file, workdir, log_file)
    if wait_ready:
        wait_until_ready(server)
    return server


def wait_until_ready(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited {server.process.returncode}:\n{server.log()}")
        try:
            status, _ = server.request("GET", "/readyz")
            if status == 200:
                return
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"server not ready in {timeout}s:\n{server.log()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on the embedded default policy for the whole session."""
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def policy_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Server]]:
    """Servers started on demand, one per fixture policy file."""
    started: dict[Path, Server] = {}
    yield started
    for running in started.values():
        running.stop()

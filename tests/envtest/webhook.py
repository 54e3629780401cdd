"""The webhook as an operator runs it against the envtest apiserver.

``certs --san 127.0.0.1`` issues the serving pair, ``serve --kubeconfig`` runs
with the given policy, ``register --url https://127.0.0.1:PORT --ca-bundle-file``
makes the apiserver call it over TLS: all through the project's own CLI as
subprocesses. ``Registered`` undoes everything in ``close`` (unregister first:
with ``failurePolicy: Fail`` a registration whose server is gone would block
every later pod create of the session).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from tests.conftest import Server, run_cli, start_server
from tests.envtest.kit import Cluster
from tests.serving_kit import wait_for


def cli_ok(*args: str) -> str:
    """Run the CLI, fail with its output unless it exits 0; its stdout."""
    done = run_cli(*args)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def issue_serving_certs(directory: Path) -> Path:
    """``certs --out DIR --san 127.0.0.1``: the CA the apiserver trusts (ca.crt)."""
    cli_ok("certs", "--out", str(directory), "--san", "127.0.0.1")
    return directory / "ca.crt"


def start_webhook(workdir: Path, kubeconfig: Path, policy: str | None = None) -> Server:
    """``serve --kubeconfig`` on free ports with a ``certs``-issued pair; not waited for."""
    certs = workdir / "certs"
    issue_serving_certs(certs)
    args = ["--kubeconfig", str(kubeconfig), "--shutdown-grace", "0.2"]
    if policy is not None:
        (workdir / "policy.yaml").write_text(policy)
        args += ["--policy", str(workdir / "policy.yaml")]
    args += [
        "--tls-cert-file",
        str(certs / "tls.crt"),
        "--tls-private-key-file",
        str(certs / "tls.key"),
    ]
    return start_server(workdir, *args, kube=True, wait_ready=False)


def register_args(server: Server, kubeconfig: Path) -> list[str]:
    args = ["register", "--url", f"https://127.0.0.1:{server.port}"]
    args += ["--ca-bundle-file", str(server.ca_file), "--kubeconfig", str(kubeconfig)]
    policy = server.workdir / "policy.yaml"
    if policy.exists():
        args += ["--policy", str(policy)]
    return args


def register(server: Server, kubeconfig: Path) -> list[str]:
    return cli_ok(*register_args(server, kubeconfig)).splitlines()


def unregister(kubeconfig: Path) -> list[str]:
    return cli_ok("unregister", "--kubeconfig", str(kubeconfig)).splitlines()


@contextlib.contextmanager
def registered_webhook(
    cluster: Cluster, workdir: Path, policy: str | None = None
) -> Iterator[Server]:
    """A serving, ready and registered webhook; unregistered and stopped whatever happens."""
    server = start_webhook(workdir, cluster.kubeconfig, policy)
    try:
        wait_ready(server)
        register(server, cluster.kubeconfig)
        yield server
    finally:
        try:
            unregister(cluster.kubeconfig)
        finally:
            server.stop()


def readyz(server: Server) -> tuple[int, Any] | None:
    try:
        return server.request("GET", "/readyz")
    except OSError:
        return None


def wait_ready(server: Server, timeout: float = 30) -> None:
    wait_until(lambda: (readyz(server) or (0,))[0] == 200, timeout, "the webhook's /readyz", server)


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, server: Server | None = None
) -> Any:
    """``wait_for``, failing at once (with the log) if `server` exits meanwhile."""

    def check() -> Any:
        if server is not None and server.process.poll() is not None:
            raise AssertionError(f"webhook exited {server.process.returncode}:\n{server.log()}")
        return condition()

    try:
        return wait_for(check, timeout, what, interval=0.05)
    except AssertionError as exc:
        if server is None or "timed out" not in str(exc):
            raise
        raise AssertionError(f"{exc}\n{server.log()[-3000:]}") from None


# --------------------------------------------------------------------------- cluster objects


def core(api_client: Any) -> Any:
    return kubernetes.client.CoreV1Api(api_client)


def create_idempotently(create: Callable[[], Any]) -> bool:
    """Run `create`; an object that exists already (HTTP 409) is fine. True when created."""
    try:
        create()
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:  # already created by an earlier module
            raise
        return False
    return True


def create_namespace(api_client: Any, name: str, labels: dict[str, str] | None = None) -> None:
    """A namespace, created unless it exists (never deleted: without a namespace controller it would stay
    Terminating; each session has a fresh apiserver)."""
    body = {"metadata": {"name": name, "labels": labels or {}}}
    create_idempotently(lambda: core(api_client).create_namespace(body))


def api_error(call: Callable[[], Any]) -> kubernetes.client.ApiException:
    """The ApiException `call` raises (fails when it succeeds)."""
    try:
        result = call()
    except kubernetes.client.ApiException as exc:
        return exc
    raise AssertionError(f"expected the apiserver to refuse, it answered {str(result)[:300]}")


def kubectl(
    cluster: Cluster, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    binary = cluster.binaries / "kubectl"
    return subprocess.run(
        [
            str(binary if binary.exists() else "kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dry_run_create(api_client: Any, pod: dict[str, Any]) -> dict[str, Any] | str:
    """The pod the apiserver would store for `pod` (server-side dry run), or its refusal message."""
    namespace = pod["metadata"]["namespace"]
    try:
        created = core(api_client).create_namespaced_pod(namespace, pod, dry_run="All")
    except kubernetes.client.ApiException as exc:
        message: str = json.loads(exc.body)["message"]
        return message
    stored: dict[str, Any] = api_client.sanitize_for_serialization(created)
    return stored

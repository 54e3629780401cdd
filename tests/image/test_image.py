"""The production image, built by podman and run as the Deployment runs it.

Run by `make image-test` only (tools/image/image-test.sh builds the image into
a throwaway store and names it in TPW_IMAGE / TPW_PODMAN_STORE); plain `make
test` deselects the `image` marker. Every container a test starts is removed
by a finalizer, whatever happens; the script removes the store.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, run_cli
from tests.serving_kit import patched_pod, wait_for

pytestmark = pytest.mark.image

PODMAN = ROOT / "tools" / "image" / "podman"
DEPLOYMENT = ROOT / "manifests" / "base" / "deployment.yaml"
POLICY = ROOT / "manifests" / "base" / "policy.yaml"
CASE = FIXTURES / "kpo-plain"
CONFIG_DIR = "/etc/task-pod-webhook"  # the Deployment's config volume mount


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    name = os.environ.get("TPW_IMAGE")
    if not name or not os.environ.get("TPW_PODMAN_STORE"):
        pytest.fail("TPW_IMAGE / TPW_PODMAN_STORE unset: run these tests with `make image-test`")
    return name


@pytest.fixture
def containers() -> Iterator[Callable[..., str]]:
    """`start(*podman_run_args)` runs a detached container; all are removed at the end."""
    started: list[str] = []

    def start(*args: str) -> str:
        name = f"tpw-test-{uuid.uuid4().hex[:12]}"
        started.append(name)
        podman("run", "--detach", "--name", name, *args)
        return name

    yield start
    for name in started:
        podman("rm", "--force", "--time", "0", name, check=False)


def container_spec() -> dict[str, Any]:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    pod = deployment["spec"]["template"]["spec"]
    return {"pod": pod, "container": pod["containers"][0]}


def host_port(name: str, port: int) -> int:
    out = podman("port", name, f"{port}/tcp").stdout.strip()
    return int(out.rsplit(":", 1)[1])


def get(
    port: int, path: str, context: ssl.SSLContext | None, body: bytes | None = None
) -> tuple[int, bytes]:
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=5
        )
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def status_or_none(port: int, path: str, context: ssl.SSLContext) -> int | None:
    try:
        return get(port, path, context)[0]
    except (OSError, http.client.HTTPException):
        return None


def in_image(image: str, code: str) -> Any:
    """Run `code` with the server's own interpreter in a fresh container; its JSON stdout."""
    result = podman(
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "/opt/task-pod-webhook/bin/python",
        image,
        "-c",
        code,
    )
    return json.loads(result.stdout)


def test_version_is_the_projects(image: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = podman("run", "--rm", "--read-only", image, "--version")
    assert result.stdout.strip() == f"task-pod-webhook {version}"


def test_user_is_numeric_non_root_and_matches_the_deployment(image: str) -> None:
    configured = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    user, _, group = configured.partition(":")
    assert user.isdigit() and group.isdigit(), configured  # runAsNonRoot needs a number
    assert int(user) != 0 and int(group) != 0
    context = container_spec()["container"]["securityContext"]
    assert (int(user), int(group)) == (context["runAsUser"], context["runAsGroup"])
    ids = in_image(image, "import json, os; print(json.dumps([os.getuid(), os.getgid()]))")
    assert ids == [int(user), int(group)]


def test_nothing_the_server_does_not_need(image: str) -> None:
    """No shell, no compiler or linker, no pip: not on PATH, not importable by the server's Python."""
    tools = ["sh", "bash", "dash", "gcc", "cc", "c++", "ld", "as", "make", "pip", "pip3", "pip3.11"]
    found = in_image(
        image,
        "import importlib.util, json, shutil;"
        f"print(json.dumps({{'tools': {{t: shutil.which(t) for t in {tools!r}}},"
        " 'modules': {m: importlib.util.find_spec(m) is not None for m in"
        " ['pip', 'setuptools', 'wheel', 'pkg_resources', 'kubernetes.aio']}}))",
    )
    assert found["tools"] == dict.fromkeys(tools)
    assert found["modules"] == dict.fromkeys(found["modules"], False)
    for shell in ("/bin/sh", "/bin/bash"):
        result = podman("run", "--rm", "--entrypoint", shell, image, "-c", "true", check=False)
        assert result.returncode != 0, f"{shell} ran in the image"


def test_startup_modules_have_bytecode(image: str) -> None:
    """The root filesystem is read-only: every module a start imports must come compiled."""
    missing = in_image(
        image,
        "import importlib, json, os, pkgutil, sys, webhook;"
        "[importlib.import_module(i.name) for i in pkgutil.walk_packages(webhook.__path__, 'webhook.')"
        " if i.name != 'webhook.__main__'];"
        "import kubernetes.client as k; k.CoreV1Api; k.AdmissionregistrationV1Api;"
        "print(json.dumps(sorted(n for n, m in list(sys.modules.items())"
        " if getattr(m, '__file__', None) and m.__file__.endswith('.py')"
        " and m.__file__.startswith('/opt/') and not os.path.exists(m.__cached__ or ''))))",
    )
    assert missing == []


@pytest.fixture
def config_volume(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """What the Deployment's projected volume holds: policy.yaml and tls/, mode 0440, group 10001."""
    volume = tmp_path / "config"
    (volume / "tls").mkdir(parents=True)
    certs = tmp_path / "certs"
    result = run_cli("certs", "--out", str(certs), "--san", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    shutil.copy(POLICY, volume / "policy.yaml")
    for name in ("tls.crt", "tls.key"):
        shutil.copy(certs / name, volume / "tls" / name)
    group = container_spec()["pod"]["securityContext"]["fsGroup"]
    for path in (volume / "policy.yaml", volume / "tls" / "tls.crt", volume / "tls" / "tls.key"):
        os.chown(path, 0, group)
        path.chmod(0o440)
    for folder in (volume, volume / "tls"):
        os.chown(folder, 0, group)
        folder.chmod(0o750)
    return volume, ssl.create_default_context(cafile=str(certs / "ca.crt"))


def test_serves_mutates_and_stops_as_the_deployment_runs_it(
    image: str, containers: Callable[..., str], config_volume: tuple[Path, ssl.SSLContext]
) -> None:
    volume, context = config_volume
    spec = container_spec()
    container, pod = spec["container"], spec["pod"]
    assert "command" not in container  # the image's own ENTRYPOINT runs
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == CONFIG_DIR and mount["readOnly"] is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = [f"--env={e['name']}={e['value']}" for e in container.get("env", [])]
    name = containers(
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=64m,mode=1777",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--group-add",
        str(pod["securityContext"]["fsGroup"]),
        "--volume",
        f"{volume}:{CONFIG_DIR}:ro",
        "--publish",
        f"127.0.0.1::{ports['https']}",
        "--publish",
        f"127.0.0.1::{ports['metrics']}",
        *env,
        image,
        *container["args"],
    )
    https, metrics = host_port(name, ports["https"]), host_port(name, ports["metrics"])

    started = time.monotonic()
    wait_for(lambda: status_or_none(https, "/readyz", context) == 200, 30, "/readyz 200")
    ready_after = time.monotonic() - started
    assert get(https, "/healthz", context)[0] == 200

    pod_object = yaml.safe_load((CASE / "pod.yaml").read_text())
    uid = str(uuid.uuid4())
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": yaml.safe_load((CASE / "case.yaml").read_text())["namespace"],
            "userInfo": {"username": "system:serviceaccount:airflow:airflow-scheduler"},
            "object": pod_object,
            "oldObject": None,
            "dryRun": False,
        },
    }
    status, body = get(https, "/mutate", context, json.dumps(review).encode())
    assert status == 200, body
    answer = json.loads(body)
    assert answer["response"]["uid"] == uid and answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    assert patched_pod(pod_object, answer) == yaml.safe_load((CASE / "mutated.yaml").read_text())
    status, scraped = get(metrics, "/metrics", None)
    assert status == 200 and b"tpw_" in scraped

    grace = pod["terminationGracePeriodSeconds"]
    stopping = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    exit_code = podman("wait", name, timeout=grace + 10).stdout.strip()
    stopped_after = time.monotonic() - stopping
    logs = podman("logs", name).stderr
    assert exit_code == "0", logs
    assert stopped_after < grace, f"took {stopped_after:.1f}s, grace is {grace}s"
    print(f"ready after {ready_after:.2f}s; stopped {stopped_after:.2f}s after SIGTERM")

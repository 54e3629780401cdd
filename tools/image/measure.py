"""Size and start-up of the image and its variants (`tools/image/image-test.sh measure`).

Needs TPW_PODMAN_STORE and TPW_IMAGE (set by image-test.sh) and, optionally,
a `git archive` of the revision to compare with ("before"), built as it was.
Variants of the image are made by changing its virtualenv in a container and
committing it: "no .pyc" (every __pycache__ removed) and "all .pyc" (the
client's lazily loaded api/ and models/ compiled too). For each: the
virtualenv's size, the time from `podman run` to the first /readyz 200
(median of RUNS, taken round-robin, run as the Deployment runs it: read-only root, tmpfs /tmp,
certificates mounted), and the import time of everything an in-cluster start
imports (the package and its API classes; median of RUNS, in a read-only
container). Prints a Markdown table.
"""

from __future__ import annotations

import http.client
import os
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PODMAN = str(ROOT / "tools" / "image" / "podman")
RUNS = int(os.environ.get("RUNS", "5"))
VENV = "/opt/task-pod-webhook"
CA = os.environ.get("IMAGE_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")

VENV_SIZE = f"""
import os
pyc = total = 0
for d, _, files in os.walk("{VENV}"):
    for f in files:
        size = os.path.getsize(os.path.join(d, f))
        total += size
        pyc += size if f.endswith(".pyc") else 0
print(total, pyc)
"""
IMPORTS = """
import time
t = time.perf_counter()
import importlib, pkgutil, webhook
for i in pkgutil.walk_packages(webhook.__path__, "webhook."):
    if i.name != "webhook.__main__":
        importlib.import_module(i.name)
import kubernetes.client as k
k.CoreV1Api, k.AdmissionregistrationV1Api
print(time.perf_counter() - t)
"""
NO_PYC = f"""
import pathlib, shutil
for p in list(pathlib.Path("{VENV}").rglob("__pycache__")):
    shutil.rmtree(p)
"""
ALL_PYC = f"""
import compileall, py_compile
compileall.compile_dir("{VENV}", quiet=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def podman(*args: str) -> str:
    return subprocess.run(
        [PODMAN, *args], check=True, capture_output=True, text=True, timeout=600
    ).stdout.strip()


def variant(image: str, tag: str, code: str) -> str:
    name = f"tpw-measure-{tag}"
    podman("run", "--name", name, "--user", "0", "--entrypoint", "python", image, "-c", code)
    try:
        podman("commit", "--quiet", name, f"localhost/tpw-measure:{tag}")
    finally:
        podman("rm", "--force", name)
    return f"localhost/tpw-measure:{tag}"


def in_image(image: str, code: str) -> str:
    python = f"{VENV}/bin/python"
    return podman("run", "--rm", "--read-only", "--entrypoint", python, image, "-c", code)


def readyz_seconds(image: str, certs: Path) -> float:
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.check_hostname = False
    started = time.monotonic()
    name = podman(
        "run", "--detach", "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001",
        "--entrypoint", f"{VENV}/bin/task-pod-webhook",
        "--volume", f"{certs}:/certs:ro", "--publish", "127.0.0.1::8443",
        image, "serve", "--host", "0.0.0.0", "--tls-cert-file", "/certs/tls.crt",
        "--tls-private-key-file", "/certs/tls.key", "--metrics-port", "0",
    )  # fmt: skip
    try:
        port = int(podman("port", name, "8443/tcp").rsplit(":", 1)[1])
        while time.monotonic() - started < 60 and "running" in podman(
            "inspect", "--format", "{{.State.Status}}", name
        ):
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return time.monotonic() - started
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.01)
        raise RuntimeError(f"{image}: no /readyz 200 in 60 s: {podman('logs', name)}")
    finally:
        podman("rm", "--force", "--time", "0", name)


def build_before(archive: Path) -> str | None:
    if not archive.is_file() or archive.stat().st_size == 0:
        return None
    context = Path(tempfile.mkdtemp(dir=os.environ["TPW_PODMAN_STORE"]))
    with tarfile.open(archive) as tar:
        tar.extractall(context, filter="data")
    podman(
        "build", "--quiet", "--build-arg", "PYTHON_IMAGE=localhost/python:3.11-slim",
        "--volume", f"{CA}:/etc/ssl/certs/ca-certificates.crt:ro",
        "--secret", f"id=ca-bundle,src={CA}", "--tag", "localhost/tpw-measure:before", str(context),
    )  # fmt: skip
    return "localhost/tpw-measure:before"


def main(argv: list[str]) -> int:
    image = os.environ["TPW_IMAGE"]
    images = {}
    before = build_before(Path(argv[0])) if argv else None
    if before:
        images["before"] = before
    images["this image"] = image
    images["no .pyc"] = variant(image, "no-pyc", NO_PYC)
    images["all .pyc"] = variant(image, "all-pyc", ALL_PYC)
    certs = Path(tempfile.mkdtemp(dir=os.environ["TPW_PODMAN_STORE"]))
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "task-pod-webhook"), "certs", "--out", str(certs),
         "--san", "127.0.0.1"], check=True, capture_output=True,
    )  # fmt: skip
    for path in (certs, *certs.iterdir()):  # readable by the image's user
        path.chmod(0o755 if path.is_dir() else 0o644)
    base = int(podman("image", "inspect", "--format", "{{.Size}}", "localhost/python:3.11-slim"))
    print(f"base image: {base / 1e6:.0f} MB; runs per figure: {RUNS}\n")
    print("| variant | image over base | venv | of it .pyc | imports | run to /readyz 200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    # Round-robin, so that load from other jobs on the machine hits every variant alike.
    imports: dict[str, list[float]] = {label: [] for label in images}
    ready: dict[str, list[float]] = {label: [] for label in images}
    for _ in range(RUNS):
        for label, name in images.items():
            imports[label].append(float(in_image(name, IMPORTS)))
            ready[label].append(readyz_seconds(name, certs))
    for label, name in images.items():
        size = int(podman("image", "inspect", "--format", "{{.Size}}", name)) - base
        total, pyc = (int(x) for x in in_image(name, VENV_SIZE).split())
        shown = "(layers)" if label in ("no .pyc", "all .pyc") else f"{size / 1e6:.0f} MB"
        print(
            f"| {label} | {shown} | {total / 1e6:.0f} MB | {pyc / 1e6:.0f} MB "
            f"| {statistics.median(imports[label]):.2f} s "
            f"| {statistics.median(ready[label]):.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

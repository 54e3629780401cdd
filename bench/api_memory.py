"""What API access costs in memory (issue 13): ``python bench/api_memory.py`` (part of
``make bench``).

A real etcd + kube-apiserver (the envtest kit of the tests, from
``$KUBEBUILDER_ASSETS``). The real server (``python -m webhook serve``, one worker,
pinned to one core) is started three ways and its RSS (VmRSS once ``/readyz``
answers 200, and VmHWM) read each time:

1. ``--no-kube``: no API access (what ``bench/bench.py`` measures);
2. ``--kubeconfig``, the cluster holding only its own namespaces and no service
   accounts: the cost of the ``kubernetes`` import, the client and the idle caches;
3. ``--kubeconfig`` again after N namespaces (two labels each, as tenants label
   them) and M service accounts (one workload-identity annotation each, which the
   cache keeps, and one unrelated annotation, which it drops) were created over
   the API: the cost of the cache per object, (3 - 2) / objects, and the time from
   start to ``/readyz`` 200 (both caches listed).

Writes ``docs/API-MEMORY-BENCHMARK.md``.

    python bench/api_memory.py [--namespaces 2000] [--service-accounts 20000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.envtest import kit  # noqa: E402  (the envtest kit, issue 8)

OUT = ROOT / "docs" / "API-MEMORY-BENCHMARK.md"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
TARGET_KIB = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _ready(port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def measure_server(certs: Path, *access: str, timeout: float = 300) -> dict[str, Any]:
    """Start the server, wait for /readyz 200, settle, read its memory, stop it."""
    port = _free_port()
    tls = [
        "--tls-cert-file",
        str(certs / "tls.crt"),
        "--tls-private-key-file",
        str(certs / "tls.key"),
    ]
    argv = ["taskset", "-c", "0", PYTHON, "-m", "webhook", "serve", "--port", str(port)]
    argv += ["--metrics-port", "0", "--shutdown-grace", "0", *tls, *access]
    with tempfile.TemporaryFile() as log:
        began = time.monotonic()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            while not _ready(port):
                if process.poll() is not None or time.monotonic() - began > timeout:
                    log.seek(0)
                    raise RuntimeError(f"server not ready: {log.read()[-2000:].decode()}")
                time.sleep(0.05)
            ready_s = time.monotonic() - began
            time.sleep(2)  # let start-up garbage go and the watches settle
            rss, peak = _status_kib(process.pid, "VmRSS"), _status_kib(process.pid, "VmHWM")
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {"ready_s": round(ready_s, 2), "rss_mb": rss / 1024, "peak_mb": peak / 1024}


def traced_cache(kubeconfig: Path, timeout: float = 120) -> dict[str, Any]:
    """The caches themselves, in this process: bytes that stay allocated (tracemalloc)
    once both have listed, over what the idle client held before."""
    import asyncio

    from webhook.kube.facts import KubeFacts

    async def run() -> dict[str, Any]:
        facts = KubeFacts.from_config(kubeconfig)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        began = time.monotonic()
        await facts.start()
        try:
            while not facts.synced:
                if time.monotonic() - began > timeout:
                    raise RuntimeError("caches did not sync")
                await asyncio.sleep(0.02)
            synced_s = time.monotonic() - began
            await asyncio.sleep(1)
            held = tracemalloc.get_traced_memory()[0] - before
            objects = len(facts.namespaces) + len(facts.service_accounts)
        finally:
            tracemalloc.stop()
            await facts.stop()
        return {"bytes": held, "objects": objects, "synced_s": round(synced_s, 2)}

    return asyncio.run(run())


def fill(api: Any, namespaces: int, service_accounts: int) -> float:
    """Create the namespaces, then the accounts spread over them (16 at a time); seconds."""
    core = kubernetes.client.CoreV1Api(api)

    def namespace(index: int) -> None:
        body = {
            "metadata": {
                "name": f"tenant-{index:05d}",
                "labels": {"team": f"team-{index % 50}", "environment": "production"},
            }
        }
        core.create_namespace(body, _preload_content=False).release_conn()

    def account(index: int) -> None:
        body = {
            "metadata": {
                "name": f"airflow-worker-{index:06d}",
                "annotations": {
                    "eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/task-{index}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
            }
        }
        namespace_name = f"tenant-{index % namespaces:05d}"
        core.create_namespaced_service_account(
            namespace_name, body, _preload_content=False
        ).release_conn()

    began = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(namespace, range(namespaces)))
        list(pool.map(account, range(service_accounts)))
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=2000)
    parser.add_argument("--service-accounts", type=int, default=20000)
    options = parser.parse_args()
    binaries = kit.assets()
    if binaries is None:
        print(f"bench/api_memory.py: {kit.SKIP_REASON}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        certs = tmp / "certs"
        subprocess.run(
            [PYTHON, "-m", "webhook", "certs", "--out", str(certs), "--san", "127.0.0.1"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        cluster = kit.Cluster.start(tmp / "cluster", binaries)
        try:
            kube = ("--kubeconfig", str(cluster.kubeconfig))
            no_kube = measure_server(certs, "--no-kube")
            print("no API access", json.dumps(no_kube), flush=True)
            empty = measure_server(certs, *kube)
            print("API access, empty caches", json.dumps(empty), flush=True)
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(
                str(cluster.kubeconfig), client_configuration=configuration
            )
            configuration.connection_pool_maxsize = 16
            api = kubernetes.client.ApiClient(configuration)
            fill_s = fill(api, options.namespaces, options.service_accounts)
            api.close()
            print(f"created in {fill_s:.1f} s", flush=True)
            full = measure_server(certs, *kube)
            print("API access, full caches", json.dumps(full), flush=True)
            traced = traced_cache(cluster.kubeconfig)
            print("caches alone (tracemalloc)", json.dumps(traced), flush=True)
        finally:
            cluster.stop()
    objects = options.namespaces + options.service_accounts
    per_object_kib = (full["rss_mb"] - empty["rss_mb"]) * 1024 / objects
    write_report(
        options,
        no_kube=no_kube,
        empty=empty,
        full=full,
        fill_s=fill_s,
        per_object_kib=per_object_kib,
        traced=traced,
    )
    traced_kib = traced["bytes"] / 1024 / max(1, traced["objects"])
    print(
        f"cache: {traced_kib:.2f} KiB per object (target ≤ {TARGET_KIB}); "
        f"server RSS {per_object_kib:.2f} KiB per object",
        flush=True,
    )
    return 0


def write_report(
    options: argparse.Namespace,
    *,
    no_kube: dict[str, Any],
    empty: dict[str, Any],
    full: dict[str, Any],
    fill_s: float,
    per_object_kib: float,
    traced: dict[str, Any],
) -> None:
    objects = options.namespaces + options.service_accounts
    traced_kib = traced["bytes"] / 1024 / max(1, traced["objects"])
    verdict = "met" if traced_kib <= TARGET_KIB else "missed"
    lines = [
        "# Memory of API access",
        "",
        "*Written by `bench/api_memory.py` (part of `make bench`); do not edit by hand.*",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work, "
        f"Python {platform.python_version()}; a real etcd + kube-apiserver (envtest, on the "
        "same machine). The real server, one worker on one core; RSS is VmRSS 2 s after "
        "`/readyz` first answered 200 (both caches listed), peak is VmHWM.",
        "",
        "| server | ready after | RSS | peak RSS |",
        "|---|---:|---:|---:|",
        f"| `--no-kube` | {no_kube['ready_s']:.2f} s | {no_kube['rss_mb']:.1f} MB "
        f"| {no_kube['peak_mb']:.1f} MB |",
        f"| API access, no namespaces or accounts to cache | {empty['ready_s']:.2f} s "
        f"| {empty['rss_mb']:.1f} MB | {empty['peak_mb']:.1f} MB |",
        f"| API access, {options.namespaces:,} namespaces and {options.service_accounts:,} "
        f"service accounts cached | {full['ready_s']:.2f} s | {full['rss_mb']:.1f} MB "
        f"| {full['peak_mb']:.1f} MB |",
        "",
        f"- **API access itself** (the `kubernetes` package, the client, two idle caches and "
        f"their threads): {empty['rss_mb'] - no_kube['rss_mb']:+.1f} MB over `--no-kube`.",
        f"- **The cache itself** (tracemalloc, in process: what stays allocated once both "
        f"caches listed {traced['objects']:,} objects, in {traced['synced_s']:.2f} s): "
        f"{traced['bytes'] / 2**20:.1f} MB, **{traced_kib:.2f} KiB per cached namespace or "
        f"service account** (target ≤ {TARGET_KIB} KiB: **{verdict}**). Each namespace keeps "
        "its labels, each account only its workload-identity annotations (here one of two).",
        f"- **The server's RSS** grows by {full['rss_mb'] - empty['rss_mb']:+.1f} MB with "
        f"the {objects:,} objects, {per_object_kib:.2f} KiB each: the cache plus the "
        "allocator's pages kept from parsing the list pages (RSS does not shrink back).",
        f"- **Sync**: `/readyz` 200 {full['ready_s'] - empty['ready_s']:+.2f} s later than with "
        f"empty caches (both lists of {objects:,} objects). Creating them over the API took "
        f"{fill_s:.0f} s ({objects / fill_s:.0f} objects/s, 16 at a time).",
        "",
    ]
    OUT.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())

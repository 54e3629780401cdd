"""The audit at scale (SPEC §13): ``python bench/audit.py`` (part of ``make bench``).

A real etcd + kube-apiserver (the envtest kit of the tests, from
``$KUBEBUILDER_ASSETS``) is filled with Airflow worker pods, a third of each
verdict (as the webhook admitted them, as users wrote them, with a PVC), ten
namespaces of N/10 pods, created concurrently over the API. Then the real
``task-pod-webhook audit`` runs as a subprocess at 1,000 and at 10,000 pods,
and each run's wall time and peak RSS (``wait4``'s ``ru_maxrss`` of that one
process) are recorded: memory must stay flat with the pod count (pages of 500),
time must stay in seconds. Writes ``docs/AUDIT-BENCHMARK.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.envtest import kit  # noqa: E402  (the envtest kit, issue 8)

FIXTURES = ROOT / "tests" / "fixtures"
OUT = ROOT / "docs" / "AUDIT-BENCHMARK.md"
NAMESPACES = 10


def pod_kinds() -> list[dict[str, Any]]:
    """Three Airflow worker pods: compliant (as admitted), would-mutate, would-deny."""
    raw = yaml.safe_load((FIXTURES / "kex-dags-in-image" / "pod.yaml").read_text())
    admitted = yaml.safe_load((FIXTURES / "kex-dags-in-image" / "mutated.yaml").read_text())
    denied = yaml.safe_load((FIXTURES / "kex-dags-in-volume" / "pod.yaml").read_text())
    return [admitted, raw, denied]


def fill(api: Any, start: int, count: int) -> float:
    """Create pods ``start .. start+count`` (concurrently); returns pods/s."""
    core = kubernetes.client.CoreV1Api(api)
    kinds = pod_kinds()

    def create(index: int) -> None:
        pod = copy.deepcopy(kinds[index % 3])
        namespace = f"bench-{index % NAMESPACES}"
        pod["metadata"].pop("generateName", None)
        pod["metadata"]["name"] = f"task-{index:05d}"
        pod["metadata"]["namespace"] = namespace
        response = core.create_namespaced_pod(namespace, pod, _preload_content=False)
        response.read()  # the whole answer, before the connection goes back to the pool
        response.release_conn()

    began = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(start, start + count)))
    return count / (time.monotonic() - began)


def run_audit(kubeconfig: Path, *args: str) -> dict[str, Any]:
    """One audit as a subprocess: wall seconds, peak RSS (MB), the summary line."""
    command = [str(ROOT / ".venv" / "bin" / "task-pod-webhook"), "audit"]
    command += ["--kubeconfig", str(kubeconfig), "--fail-on", "never", *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"audit failed ({process.returncode}): {errors}")
    summary = next(
        (line for line in (text + errors).splitlines() if "task pods judged" in line), ""
    )
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="pod counts, ascending")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    binaries = kit.assets()
    if binaries is None:
        print(f"bench/audit.py: {kit.SKIP_REASON}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        cluster = kit.Cluster.start(Path(directory), binaries)
        try:
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(
                str(cluster.kubeconfig), client_configuration=configuration
            )
            configuration.connection_pool_maxsize = 16  # one connection per creating thread
            api = kubernetes.client.ApiClient(configuration)
            core = kubernetes.client.CoreV1Api(api)
            for index in range(NAMESPACES):
                core.create_namespace({"metadata": {"name": f"bench-{index}"}})
            have = 0
            for size in sizes:
                rate = fill(api, have, size - have)
                have = size
                table = run_audit(cluster.kubeconfig)
                as_json = run_audit(cluster.kubeconfig, "--output", "json")
                row = {"pods": size, "create_rate": rate, "table": table, "json": as_json}
                rows.append(row)
                print(json.dumps(row), flush=True)
            api.close()
        finally:
            cluster.stop()
    write_report(rows)
    return 0


def write_report(rows: list[dict[str, Any]]) -> None:
    lines = [
        "# Audit benchmark",
        "",
        "*Written by `bench/audit.py` (part of `make bench`); do not edit by hand.*",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work, "
        f"Python {platform.python_version()}; a real etcd + kube-apiserver "
        "(envtest, on the same machine).",
        "",
        "Pods: Airflow KubernetesExecutor workers, a third of each verdict, in 10 "
        "namespaces; `task-pod-webhook audit --fail-on never` over all namespaces, as "
        "a subprocess. Peak RSS is that process's `ru_maxrss`.",
        "",
        "| pods | created at | audit (table): wall | pods/s | peak RSS "
        "| audit (json): wall | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        table, as_json = row["table"], row["json"]
        lines.append(
            f"| {row['pods']:,} | {row['create_rate']:.0f} pods/s | {table['wall']:.2f} s "
            f"| {row['pods'] / table['wall']:.0f} | {table['rss_mb']:.1f} MB "
            f"| {as_json['wall']:.2f} s | {as_json['rss_mb']:.1f} MB |"
        )
    lines += ["", "Summary lines:", ""]
    lines += [f"- {row['pods']:,} pods: `{row['table']['summary']}`" for row in rows]
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark run: servers, load, measurements, profile, report.

Called by ``bench/run.sh`` (which installs wrk and py-spy first) with the
project's venv Python::

    .venv/bin/python bench/bench.py [--label NAME] [--quick] [--no-profile]

Every server runs pinned to core 0 (``taskset -c 0``), every load generator
pinned to core 1, all over TLS on 127.0.0.1 with the same certificate. For each
body, fresh ceiling, naive and ours servers run side by side (so each row's peak
RSS is that body's) and are loaded in turns: a warm-up, saturation (wrk, 16
connections, 3 rounds of 3 s each, alternating between the servers so that the
machine's drift hits them alike), idle (wrk, 1 connection, 2 rounds of 2 s),
then each one's fixed 100 requests/s (``bench/rate.py``, 10 s) and peak RSS
(VmHWM). Then ``--workers 2`` against 1 worker, alike; py-spy on ours; the
in-process stage costs (``bench/stages.py``). Other processes' CPU use during
each measurement is recorded (``other load``), and the run waits (boundedly)
for a quiet machine before each group.

Results: ``bench/results/<time>-<label>.json`` (full, gitignored), one summary
line appended to ``bench/history.jsonl`` (kept: the before/after record), and
``docs/BENCHMARKS.md`` rendered from both (``bench/report.py``). ``--quick``
shortens every load and writes neither history nor the document.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]  # this tree's webhook package, whatever the venv says

import bodies  # noqa: E402
import report  # noqa: E402

PYTHON = sys.executable
# Every Python process of the run imports the webhook package of this tree.
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}
SERVER_CPU = "0"
LOAD_CPU = "1"
HOST = "127.0.0.1"
SANS = ("--san", "127.0.0.1", "--san", "localhost")
BODY_NAMES = bodies.NAMES


@dataclass(frozen=True)
class Durations:
    """Seconds (wrk takes whole seconds). Saturation and idle loads are split into
    rounds that alternate between the servers compared, so that the machine's drift
    hits them alike."""

    warmup: int = 2
    saturation_round: int = 3
    saturation_rounds: int = 3
    idle_round: int = 2
    idle_rounds: int = 2
    rate: int = 10
    profile: int = 10

    @classmethod
    def quick(cls) -> Durations:
        return cls(1, 1, 2, 1, 1, 3, 3)


@dataclass
class ServerSpec:
    name: str  # ours | naive | ceiling | ours-w2
    title: str
    argv: list[str]
    cpus: str = SERVER_CPU
    workers: int = 1
    bodies: tuple[str, ...] = BODY_NAMES


@dataclass
class Env:
    tmp: Path
    cert: Path
    key: Path
    body_dir: Path
    body_info: dict[str, dict[str, Any]]
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)

    def body(self, name: str) -> Path:
        return self.body_dir / f"{name}.json"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- servers -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_specs(env: Env) -> list[ServerSpec]:
    tls = ["--tls-cert-file", str(env.cert), "--tls-private-key-file", str(env.key)]
    serve = ["serve", "--no-kube", "--metrics-port", "0", "--shutdown-grace", "0", *tls]
    return [
        ServerSpec(
            "ceiling",
            "ceiling (bare aiohttp + orjson)",
            [PYTHON, str(BENCH / "ceiling_server.py"), *tls],
        ),
        ServerSpec(
            "naive",
            "naive mutator (deepcopy + jsonpatch.make_patch)",
            [PYTHON, str(BENCH / "naive_server.py"), *serve],
        ),
        ServerSpec("ours", "task-pod-webhook serve", [PYTHON, "-m", "webhook", *serve]),
        ServerSpec(
            "ours-w2",
            "task-pod-webhook serve --workers 2",
            [PYTHON, "-m", "webhook", *serve, "--workers", "2"],
            cpus="0,1",
            workers=2,
            bodies=("pod-1", "pod-50"),
        ),
    ]


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key in ("VmHWM", "VmRSS"):
        found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        if found:
            out[key] = int(found.group(1))
    return out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class RunningServer:
    def __init__(self, spec: ServerSpec, env: Env) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = env.tmp / f"{spec.name}-{self.port}.log"
        argv = ["taskset", "-c", spec.cpus, *spec.argv, "--port", str(self.port)]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=CHILD_ENV,
                start_new_session=True,
            )
        self._wait_ready()
        self.start_rss = self.memory()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited: {self.tail()}")
            try:
                connection = http.client.HTTPSConnection(
                    HOST, self.port, context=_unverified(), timeout=2
                )
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    if self.spec.workers > 1:
                        self._wait_workers(deadline)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.spec.name} not ready within {timeout}s: {self.tail()}")

    def _wait_workers(self, deadline: float) -> None:
        while time.monotonic() < deadline and len(self.worker_pids()) < self.spec.workers:
            time.sleep(0.1)
        text = ""
        while time.monotonic() < deadline:  # every worker printed "serving"
            text = self.log_path.read_text(errors="replace")
            if text.count('"msg":"serving"') >= self.spec.workers:
                return
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """Every process of the server (the supervisor too, with workers)."""
        return sorted({self.process.pid, *self.worker_pids()})

    def worker_pids(self) -> list[int]:
        if self.spec.workers <= 1:
            return [self.process.pid]
        return [p for p in _children(self.process.pid) if "spawn_main" in _cmdline(p)]

    def memory(self) -> dict[str, Any]:
        """Peak and current RSS in MB: per worker process, and all processes together."""
        pids = self.worker_pids()
        statuses = [_proc_status(p) for p in pids]
        hwm = [s.get("VmHWM", 0) / 1024 for s in statuses]
        rss = [s.get("VmRSS", 0) / 1024 for s in statuses]
        total = sum(hwm)
        if self.spec.workers > 1:
            total += _proc_status(self.process.pid).get("VmHWM", 0) / 1024
        return {
            "peak_mb": round(max(hwm, default=0), 1),
            "rss_mb": round(max(rss, default=0), 1),
            "peak_total_mb": round(total, 1),
        }

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def count_log(self, needle: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # the group we started
                self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


@contextlib.contextmanager
def running(spec: ServerSpec, env: Env) -> Iterator[RunningServer]:
    server = RunningServer(spec, env)
    try:
        yield server
    finally:
        server.stop()


# --- other load on the machine ------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def _machine_busy() -> float:
    """CPU seconds spent (all cores, not idle) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class OtherLoad:
    """The CPU share (of all cores) used by processes that are not this benchmark's
    during a measurement: another test run on the same machine skews every number."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        ours = _own_cpu() + sum(_process_cpu(p) for p in self.pids)
        return time.monotonic(), _machine_busy(), ours

    def share(self) -> float:
        wall0, busy0, ours0 = self.start
        wall1, busy1, ours1 = self._snapshot()
        other = (busy1 - busy0) - (ours1 - ours0)
        return round(max(0.0, other) / max(1e-9, (wall1 - wall0) * CPUS), 3)


def wait_until_quiet(limit: float, threshold: float = 0.1) -> float:
    """Wait (at most ``limit`` s) until other processes use under ``threshold`` of the
    machine over one second; return the seconds waited."""
    waited = 0.0
    while True:
        probe = OtherLoad([])
        time.sleep(1.0)
        if probe.share() < threshold or waited >= limit:
            return waited
        if waited == 0:
            log(f"other processes are using the CPU; waiting up to {limit:.0f} s for quiet")
        waited += 1.0


# --- correctness check (before any load) ------------------------------------------


def post(port: int, body: bytes, path: str = "/mutate") -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPSConnection(HOST, port, context=_unverified(), timeout=10)
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data)


def expected_answers(env: Env) -> dict[str, dict[str, Any]]:
    """What /mutate must answer for each body: verdict and the object after the patch."""
    import base64

    from webhook.admission.decide import decide
    from webhook.admission.facts import NoKubeFacts
    from webhook.admission.protocol import parse_review
    from webhook.policy import default_policy

    policy = default_policy()
    out = {}
    for name in BODY_NAMES:
        raw = env.body(name).read_bytes()
        request = parse_review(raw)
        decision = decide(request, policy, NoKubeFacts().facts(request.namespace, policy))
        response = decision.response
        patched = request.object
        if "patch" in response:
            ops = json.loads(base64.b64decode(response["patch"]))
            patched = jsonpatch.apply_patch(request.object, ops, in_place=False)
        out[name] = {
            "allowed": response["allowed"],
            "verdict": decision.verdict,
            "operations": len(decision.patch),
            "object": patched,
            "message": response.get("status", {}).get("message"),
            "warnings": len(response.get("warnings", [])),
        }
    return out


def check_answer(server: RunningServer, env: Env, name: str) -> str:
    """``ok``, or what is wrong with the server's answer for body ``name``."""
    import base64

    raw = env.body(name).read_bytes()
    status, review = post(server.port, raw)
    if status != 200:
        return f"HTTP {status}"
    response = review.get("response", {})
    uid = json.loads(raw)["request"]["uid"]
    if response.get("uid") != uid:
        return "uid not echoed"
    if server.spec.name == "ceiling":
        return "ok" if response.get("allowed") is True else "not allowed"
    expected = env.expected[name]
    if response.get("allowed") != expected["allowed"]:
        return f"allowed={response.get('allowed')}, expected {expected['allowed']}"
    if not expected["allowed"]:
        same = response.get("status", {}).get("message") == expected["message"]
        return "ok" if same else "denial message differs"
    obj = json.loads(raw)["request"]["object"]
    if "patch" in response:
        ops = json.loads(base64.b64decode(response["patch"]))
        obj = jsonpatch.apply_patch(obj, ops, in_place=False)
    return "ok" if obj == expected["object"] else "patched object differs"


# --- load ------------------------------------------------------------------------


def _bench_json(output: str, what: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return result
    raise RuntimeError(f"{what}: no result line in output:\n{output[-2000:]}")


def wrk(port: int, body: Path, connections: int, seconds: float) -> dict[str, Any]:
    argv = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "post.lua"),
        f"https://{HOST}:{port}/mutate",
        "--",
        str(body),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    result = _bench_json(done.stdout + done.stderr, "wrk")
    seconds_run = result["duration_us"] / 1e6
    lat = result["latency_us"]
    errors = sum(result["errors"].values())
    return {
        "rps": round(result["requests"] / seconds_run, 1),
        "requests": result["requests"],
        "seconds": seconds_run,
        "errors": errors,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
    }


def fixed_rate(port: int, body: Path, seconds: float, rate: float = 100.0) -> dict[str, Any]:
    argv = [
        "taskset",
        "-c",
        LOAD_CPU,
        PYTHON,
        str(BENCH / "rate.py"),
        "--port",
        str(port),
        "--body",
        str(body),
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return _bench_json(done.stdout + done.stderr, "rate.py")


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from alternating rounds: req/s over all of them, p50 the median
    round's, p99 and max the worst round's; ``rounds`` keeps each round's req/s."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)

    def median(key: str) -> float:
        values = sorted(r[key] for r in rounds)
        return values[len(values) // 2]

    return {
        "rps": round(requests / seconds, 1),
        "requests": requests,
        "errors": sum(r["errors"] for r in rounds),
        "p50_ms": median("p50_ms"),
        "p90_ms": median("p90_ms"),
        "p99_ms": max(r["p99_ms"] for r in rounds),
        "p999_ms": max(r["p999_ms"] for r in rounds),
        "max_ms": max(r["max_ms"] for r in rounds),
        "rounds": [r["rps"] for r in rounds],
        "other_load": max(r["other_load"] for r in rounds),
    }


def alternate(
    servers: list[RunningServer], body: Path, connections: int, seconds: int, rounds: int
) -> list[dict[str, Any]]:
    """``rounds`` wrk runs per server, the servers taking turns; one combined result each."""
    results: list[list[dict[str, Any]]] = [[] for _ in servers]
    for _ in range(rounds):
        for index, server in enumerate(servers):
            load = OtherLoad(server.pids())
            result = wrk(server.port, body, connections, seconds)
            result["other_load"] = load.share()
            results[index].append(result)
    return [combine(r) for r in results]


def measure_group(
    servers: list[RunningServer], env: Env, name: str, durations: Durations
) -> list[dict[str, Any]]:
    """Saturation and idle in alternating rounds, then each server's fixed rate and memory."""
    body = env.body(name)
    for server in servers:
        wrk(server.port, body, 16, durations.warmup)
    saturation = alternate(
        servers, body, 16, durations.saturation_round, durations.saturation_rounds
    )
    idle = alternate(servers, body, 1, durations.idle_round, durations.idle_rounds)
    rows = []
    for index, server in enumerate(servers):
        load = OtherLoad(server.pids())
        rate = fixed_rate(server.port, body, durations.rate)
        rate["other_load"] = load.share()
        rows.append(
            {
                "saturation": saturation[index],
                "idle": idle[index],
                "rate100": rate,
                "memory": server.memory(),
                "memory_at_start": server.start_rss,
                "errored_responses": server.count_log("errored admission response"),
            }
        )
    return rows


# --- environment floor -------------------------------------------------------------

_PING_SERVER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(64)
    if not d:
        break
    c.sendall(d)
"""


def loopback_floor(count: int = 2000) -> dict[str, float]:
    """Round trip of 1 byte over loopback TCP between two Python processes on cores 0 and 1:
    what this machine costs before any HTTP, TLS or JSON (back to back, and at 100/s)."""
    echo = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, PYTHON, "-c", _PING_SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        os.sched_setaffinity(0, {int(LOAD_CPU)})
        try:
            with socket.create_connection((HOST, port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def rtts(n: int, gap: float) -> list[float]:
                    out = []
                    for _ in range(n):
                        if gap:
                            time.sleep(gap)
                        start = time.perf_counter()
                        sock.sendall(b"x")
                        sock.recv(64)
                        out.append((time.perf_counter() - start) * 1000)
                    return sorted(out)

                busy = rtts(count, 0)
                paced = rtts(200, 0.01)
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    finally:
        echo.terminate()
        echo.wait(timeout=10)

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(len(values) * p / 100))], 4)

    return {
        "busy_p50_ms": pct(busy, 50),
        "busy_p99_ms": pct(busy, 99),
        "paced_p50_ms": pct(paced, 50),
        "paced_p99_ms": pct(paced, 99),
    }


# --- profile ----------------------------------------------------------------------


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")


def profile(spec: ServerSpec, env: Env, name: str, seconds: float) -> dict[str, Any]:
    """py-spy on our server (1 worker) under saturation with body ``name``."""
    tool = py_spy()
    if tool is None:
        return {"error": "py-spy not installed"}
    out = env.tmp / f"profile-{name}.txt"
    with running(spec, env) as server:
        body = env.body(name)
        wrk(server.port, body, 16, 1)
        load = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                "wrk",
                "-t1",
                "-c16",
                f"-d{round(seconds) + 3}s",
                "-s",
                str(BENCH / "post.lua"),
                f"https://{HOST}:{server.port}/mutate",
                "--",
                str(body),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1)
        record = subprocess.run(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                tool,
                "record",
                "--pid",
                str(server.process.pid),
                "--duration",
                str(round(seconds)),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        load_out, _ = load.communicate(timeout=seconds + 60)
    if record.returncode != 0 or not out.exists():
        return {"error": f"py-spy record failed: {(record.stderr or record.stdout)[-500:]}"}
    result = report.summarize_stacks(out.read_text())
    with contextlib.suppress(RuntimeError):
        result["rps_while_profiled"] = round(
            _bench_json(load_out, "wrk")["requests"] / (round(seconds) + 3), 1
        )
    return result


def stages(seconds_per_stage: float) -> dict[str, Any]:
    """In-process cost of each stage of a review (bench/stages.py, pinned to core 0)."""
    done = subprocess.run(
        [
            "taskset",
            "-c",
            SERVER_CPU,
            PYTHON,
            str(BENCH / "stages.py"),
            "--seconds",
            str(seconds_per_stage),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-1000:]}
    return _bench_json(done.stdout, "stages.py")


# --- machine ----------------------------------------------------------------------


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run_text(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    wrk_version = _run_text(["wrk", "--version"]).splitlines()
    spy = py_spy()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "virtualized": bool(flags and "hypervisor" in flags.group(1).split()),
        "memory_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "orjson": _version("orjson"),
        "uvloop": _version("uvloop"),
        "jsonpatch": _version("jsonpatch"),
        "openssl": ssl.OPENSSL_VERSION,
        "wrk": wrk_version[0].split(" [")[0] if wrk_version else "unknown",
        "py-spy": _run_text([spy, "--version"]).removeprefix("py-spy ") if spy else "none",
    }


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return platform.system()
    found = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    return found.group(1) if found else platform.system()


def commit() -> dict[str, Any]:
    """The commit measured (``BENCH_COMMIT`` when the tree is an export without git)."""
    if os.environ.get("BENCH_COMMIT"):
        return {"commit": os.environ["BENCH_COMMIT"], "dirty": False}
    head = _run_text(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    status = _run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {"commit": head or "unknown", "dirty": bool(status)}


def code_fingerprint() -> str:
    """A hash of the webhook package's sources: the code measured. Compared at the
    start and the end of the run, it tells whether the code changed meanwhile."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "webhook").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# --- main -------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    durations = Durations.quick() if args.quick else Durations()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="tpw-bench-"))
    try:
        certs = tmp / "certs"
        subprocess.run(
            [PYTHON, "-m", "webhook", "certs", "--out", str(certs), *SANS],
            check=True,
            cwd=ROOT,
            env=CHILD_ENV,
            capture_output=True,
        )
        body_dir = tmp / "bodies"
        env = Env(tmp, certs / "tls.crt", certs / "tls.key", body_dir, bodies.write_all(body_dir))
        env.expected = expected_answers(env)
        for name in BODY_NAMES:
            info = env.body_info[name]
            info.update(
                {k: env.expected[name][k] for k in ("allowed", "verdict", "operations", "warnings")}
            )
            log(f"body {name}: {info['bytes']} bytes, {info['verdict']}")
        results: dict[str, Any] = {
            "label": args.label,
            "quick": args.quick,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **commit(),
            "code": code_fingerprint(),
            "machine": machine(),
            "durations": vars(durations),
            "bodies": env.body_info,
            "floor": loopback_floor(),
            "servers": {},
        }
        log(f"loopback floor: {results['floor']}")
        specs = {spec.name: spec for spec in server_specs(env)}
        for spec in specs.values():
            results["servers"][spec.name] = {"title": spec.title, "workers": spec.workers}
        results["scale"] = {}
        quiet_budget = 240.0  # seconds this run may wait in all for other load to pass
        groups = [
            # the three single-worker servers, side by side on core 0, for every body
            *((name, ("ceiling", "naive", "ours")) for name in BODY_NAMES),
            # two workers on cores 0-1 against one, for the bodies of the Scale section
            *((name, ("ours", "ours-w2")) for name in specs["ours-w2"].bodies),
        ]
        for name, members in groups:
            waited = wait_until_quiet(min(60.0, quiet_budget))
            quiet_budget -= waited
            results["waited_for_quiet_s"] = results.get("waited_for_quiet_s", 0) + waited
            scale = "ours-w2" in members
            measured = members[1:] if scale else members  # rows this group fills in
            try:
                with contextlib.ExitStack() as stack:
                    servers = [stack.enter_context(running(specs[m], env)) for m in members]
                    for server in servers:
                        check = check_answer(server, env, name)
                        if check != "ok":
                            raise RuntimeError(f"{server.spec.name}: wrong answer: {check}")
                    log(f"{name}: {', '.join(members)} answer right; measuring")
                    if scale:
                        body = env.body(name)
                        for server in servers:
                            wrk(server.port, body, 16, durations.warmup)
                        one, two = alternate(
                            servers,
                            body,
                            16,
                            durations.saturation_round,
                            durations.saturation_rounds,
                        )
                        results["scale"][name] = {"workers-1": one, "workers-2": two}
                        rows = measure_group(servers[1:], env, name, durations)
                    else:
                        rows = measure_group(servers, env, name, durations)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                # A broken group (a server that fails to start or answers wrongly) is
                # reported in the document; the rest of the run goes on.
                for member in measured:
                    results["servers"][member][name] = {"error": str(exc)[-600:]}
                log(f"{name}: FAILED: {exc}")
                continue
            for member, row in zip(measured, rows, strict=True):
                results["servers"][member][name] = row
                log(
                    f"{member} / {name}: {row['saturation']['rps']} req/s "
                    f"(rounds {row['saturation']['rounds']}), idle p50 "
                    f"{row['idle']['p50_ms']} ms, p99@100/s {row['rate100']['p99_ms']} ms, "
                    f"peak {row['memory']['peak_mb']} MB, other load "
                    f"{max(row[k]['other_load'] for k in ('saturation', 'idle', 'rate100')):.0%}"
                )
        if not args.no_profile:
            ours = specs["ours"]
            results["profile"] = {}
            for name in ("pod-1", "pod-50"):
                log(f"profiling ours / {name} with py-spy")
                results["profile"][name] = profile(ours, env, name, durations.profile)
            log("in-process stage costs")
            load = OtherLoad([])
            results["stages"] = stages(0.15 if args.quick else 0.4)
            results["stages"]["other_load"] = load.share()
        results["elapsed_s"] = round(time.monotonic() - started)
        if code_fingerprint() != results["code"]:
            results["code_changed"] = True
            log("warning: the webhook package changed during the run: the results mix versions")
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", default=os.environ.get("BENCH_LABEL") or "run")
    parser.add_argument("--quick", action="store_true", help="short loads; no history, no doc")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,60}", args.label):
        print("error: --label: letters, digits, '.', '_', '-' only", file=sys.stderr)
        return 2
    results = run(args)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{stamp}-{args.label}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    log(f"results: bench/results/{out.name}")
    print(report.summary_text(results))
    if not args.quick:
        report.append_history(results)
        report.write_document(results)
        log(f"wrote docs/BENCHMARKS.md (run took {results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

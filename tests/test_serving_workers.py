"""``serve --workers N`` under its supervisor (SPEC §15): workers that heal, a crash
loop that gives up, no orphan when the supervisor dies, one metrics endpoint.

Real processes and signals. Every wait polls a condition with a generous bound
(the machine may be loaded); every process a test starts carries a mark in its
environment, and ``no_process_left`` fails the test (and kills them) if any
outlives it.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server
from tests.serving_kit import (
    HOST,
    JSON_HEADERS,
    MARK_VARIABLE,
    LoadClient,
    log_records,
    no_process_left,
    review_body,
    running_load,
    scrape,
    series,
    value,
    wait_for,
    worker_pids,
)
from webhook.serving.supervisor import CRASH_LIMIT, METRICS_DIR_PREFIX

pytestmark = pytest.mark.slow
BOUND = 30.0  # seconds: generous, for a loaded machine


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The servers' environment: a mark on every process, and a temp dir of the test's own."""
    mark = uuid.uuid4().hex
    temp = tmp_path / "tmp"
    temp.mkdir()
    with no_process_left(mark):
        yield {MARK_VARIABLE: mark, "TMPDIR": str(temp)}


def start_workers(workdir: Path, env: dict[str, str], *args: str, **options: object) -> Server:
    server = start_server(
        workdir, "--workers", "2", "--shutdown-grace", "0.5", *args, env=env, **options
    )  # type: ignore[arg-type]
    wait_for(lambda: len(worker_pids(server)) == 2, BOUND, "two workers")
    wait_for(lambda: serving(server) == 2, BOUND, "both workers to serve")
    return server


def serving(server: Server) -> int:
    return sum(r.get("msg") == "serving" for r in log_records(server))


def requests_answered(port: int) -> float:
    return sum(series(scrape(port), "tpw_admission_requests_total").values())


def test_a_killed_worker_is_replaced_without_a_gap_and_counted(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_workers(tmp_path / "run", env)
    try:
        victim, survivor = worker_pids(server)
        load = LoadClient(server.port, server.context(), channels=("new",))
        with running_load(load):
            load.wait_for_requests(20, timeout=BOUND)
            killed = load.outcomes[-1].finished
            os.kill(victim, signal.SIGKILL)
            wait_for(
                lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server),
                BOUND,
                "a replacement worker",
            )
            (replacement,) = set(worker_pids(server)) - {survivor}
            # keep the load on until the replacement has answered reviews too
            wait_for(
                lambda: replacement_answered(server, replacement) >= 5,
                BOUND,
                "the replacement to answer reviews",
            )
            load.wait_for_requests(20, since=load.outcomes[-1].finished, timeout=BOUND)
        outcomes = load.outcomes
        samples = scrape(server.metrics_port)
    finally:
        server.stop()
    around = [o for o in outcomes if o.started >= killed - 1.0]
    failed = [o for o in outcomes if o.problem is not None]
    answered = [o.finished for o in outcomes if o.problem is None]
    gaps = [b - a for a, b in itertools.pairwise(answered)]
    widest = max(b - a for a, b in itertools.pairwise(answered) if b > killed - 1.0)
    median = sorted(gaps)[len(gaps) // 2]
    print(
        f"\nworker killed: {len(around)} requests since, {len(failed)} failed; widest gap "
        f"between answers {widest * 1000:.0f} ms (median {median * 1000:.1f} ms)"
    )
    # one sequential client: at most the one request the killed worker was answering fails
    assert len(failed) <= 1, [o.problem for o in failed]
    assert widest < 5.0
    assert value(samples, "tpw_worker_restarts_total") == 1
    # the dead worker's counts are kept: the scrape counts every answer the client got
    # (and perhaps the one the killed worker counted but never sent)
    total = sum(series(samples, "tpw_admission_requests_total").values())
    assert len(answered) <= total <= len(answered) + len(failed)
    (line,) = [r for r in log_records(server) if r.get("msg", "").startswith("worker ")]
    assert (line["oldPid"], line["newPid"], line["cause"]) == (
        victim,
        replacement,
        "signal SIGKILL",
    )


def replacement_answered(server: Server, pid: int) -> int:
    """Decisions logged by the worker index `pid` serves, after it said "serving"."""
    records = log_records(server)
    started = [i for i, r in enumerate(records) if r.get("newPid") == pid]
    if not started:
        return 0
    index = int(records[started[0]]["msg"].split()[1])  # "worker I replaced: ..."
    later = records[started[0] :]
    return sum(1 for r in later if r.get("msg") == "admission" and r.get("worker") == index)


def bind_probe(port: int) -> bool:
    """Whether a new listener (as a restarted server opens it) can take `port`."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError:
            return False
        return True


def test_a_killed_supervisor_takes_its_workers_down_and_frees_the_port(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_workers(tmp_path / "run", env)
    workers = worker_pids(server)
    for i in range(3):
        assert server.request("POST", "/mutate", review_body(f"first-{i}"), JSON_HEADERS)[0] == 200
    left_behind = list(Path(env["TMPDIR"]).glob(f"{METRICS_DIR_PREFIX}*"))
    assert len(left_behind) == 1
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(BOUND)
    wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
        BOUND,
        "the workers to exit",
    )
    wait_for(lambda: bind_probe(server.port), BOUND, "the HTTPS port to be free")
    assert bind_probe(server.metrics_port)
    # a new server takes the same ports, and removes the dead supervisor's metrics files
    again = start_workers(tmp_path / "again", env, ports=(server.port, server.metrics_port))
    try:
        status, _ = again.request("POST", "/mutate", review_body("again"), JSON_HEADERS)
        assert status == 200
        assert not any(path.exists() for path in left_behind)
        assert requests_answered(again.metrics_port) == 1  # none of the first server's 3
    finally:
        assert again.stop() == 0, again.log()
    assert not list(Path(env["TMPDIR"]).glob(f"{METRICS_DIR_PREFIX}*"))
    orphaned = [r for r in log_records(server) if "supervisor is gone" in r.get("msg", "")]
    assert len(orphaned) == 2


def test_a_crash_loop_backs_off_then_the_supervisor_exits_non_zero(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_workers(tmp_path / "run", env)
    seen: set[int] = set()

    def kill_workers() -> bool:
        for pid in worker_pids(server):
            seen.add(pid)
            os.kill(pid, signal.SIGKILL)
        return server.process.poll() is not None

    try:
        wait_for(kill_workers, 60.0, "the supervisor to give up", interval=0.05)
    finally:
        code = server.stop(signal.SIGKILL)
    records = log_records(server)
    backoffs = [r["msg"] for r in records if "backing off" in r.get("msg", "")]
    print(f"\ncrash loop: {len(seen)} workers started, exit {code}; " + "; ".join(backoffs))
    assert code == 1, server.log()
    # no fork bomb: the first two workers and one per death before the limit
    assert len(seen) <= 2 + CRASH_LIMIT - 1
    delays = [float(m.rsplit(" ", 1)[1].rstrip("s")) for m in backoffs]
    assert delays == sorted(delays) and len(set(delays)) == len(delays) >= 2
    assert any("crash loop" in r.get("msg", "") for r in records)

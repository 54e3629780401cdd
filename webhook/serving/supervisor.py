"""``serve --workers N``: a supervisor in the manner of gunicorn's arbiter.

The supervisor serves no admission traffic. It starts N worker processes that
share the HTTPS port (SO_REUSEPORT), serves the whole server's metrics on the
one ``--metrics-port``, and watches the workers:

- A worker that dies is replaced at once, with one log line naming the old and
  the new pid and the cause (the signal, or the exit code), and
  ``tpw_worker_restarts_total`` counts it. The other workers keep serving
  meanwhile, so the port never goes unanswered.
- A crash loop backs off: the k-th death within ``CRASH_WINDOW`` seconds waits
  ``BACKOFF_BASE * 2**(k-2)`` seconds (at most ``BACKOFF_MAX``) before the
  replacement, and the ``CRASH_LIMIT``-th makes the supervisor stop the others
  and exit 1, so that the kubelet restarts the pod (and its own backoff applies).
- A worker that exits 2 could not start (policy, certificate, listener): a
  replacement would fail the same way, so the supervisor stops and exits 2.
- SIGTERM / SIGINT are forwarded to the workers (each runs the SIGTERM sequence
  of ``runner``); the supervisor exits with the worst of their codes, killing
  any that outlives the grace period and the drain by ``STOP_MARGIN`` seconds.
- If the supervisor dies, even by SIGKILL, the workers stop (see ``runner``:
  the kernel's parent-death signal on Linux, and the parent's pipe, which
  every platform closes, as the fallback).

Metrics use prometheus_client's multiprocess mode: the supervisor creates a
private directory, exports it as ``PROMETHEUS_MULTIPROC_DIR`` before any worker
starts (the workers, started with ``spawn``, import prometheus_client with it
set), marks dead workers' files dead, and removes the directory on exit.
Directories left by a supervisor killed outright are removed by the next one.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from webhook.serving.settings import DRAIN_TIMEOUT, EXIT_CONFIG, Settings

log = logging.getLogger("task_pod_webhook.supervisor")

CRASH_WINDOW = 60.0  # seconds over which worker deaths are counted
CRASH_LIMIT = 5  # deaths within the window that make the supervisor give up
BACKOFF_BASE = 0.25  # seconds before the second replacement within the window
BACKOFF_MAX = 8.0
STOP_MARGIN = 5.0  # seconds past grace + drain before a worker is killed
EXIT_CRASH_LOOP = 1
METRICS_DIR_PREFIX = "tpw-metrics-"

Target = Callable[[Settings, Path | None], None]


class RestartCounter:
    """``tpw_worker_restarts_total``, kept by the supervisor alone (a collector of
    its own, whatever value class prometheus_client picked at import)."""

    def __init__(self) -> None:
        self.value = 0

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tpw_worker_restarts", "Worker processes replaced after they died."
        )
        family.add_metric([], self.value)
        yield family


@dataclass
class _Slot:
    index: int
    process: BaseProcess | None = None
    restart_at: float | None = None  # monotonic time of a pending replacement
    last_pid: int | None = None
    last_cause: str = ""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_metrics_dirs(root: Path) -> None:
    """Remove the metrics directories of supervisors that are gone (killed outright)."""
    for entry in root.glob(f"{METRICS_DIR_PREFIX}*"):
        owner = entry.name[len(METRICS_DIR_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            shutil.rmtree(entry, ignore_errors=True)


class Supervisor:
    def __init__(self, settings: Settings, ca_file: Path | None, target: Target) -> None:
        self.settings = replace(settings, reuse_port=True)
        self.ca_file = ca_file
        self.target = target
        self.context = multiprocessing.get_context("spawn")
        self.slots = [_Slot(index) for index in range(settings.workers)]
        self.restarts = RestartCounter()
        self.deaths: collections.deque[float] = collections.deque()
        self.stop_signal: str | None = None
        self.metrics_dir: Path | None = None

    # --- the parts -------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        process = self.context.Process(
            target=self.target,
            args=(replace(self.settings, worker_index=slot.index), self.ca_file),
            name=f"task-pod-webhook-worker-{slot.index}",
        )
        process.start()
        if slot.last_pid is not None:
            self.restarts.value += 1
            log.warning(
                "worker %d replaced: pid %s died (%s), pid %s started",
                slot.index,
                slot.last_pid,
                slot.last_cause,
                process.pid,
                extra={"oldPid": slot.last_pid, "newPid": process.pid, "cause": slot.last_cause},
            )
        slot.process, slot.restart_at = process, None

    def _live(self) -> list[BaseProcess]:
        return [s.process for s in self.slots if s.process is not None]

    def _signal_all(self, signum: int) -> None:
        for process in self._live():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def _reap(self, slot: _Slot) -> int:
        """Forget `slot`'s dead process; returns its exit code."""
        process = slot.process
        assert process is not None
        process.join()
        code = process.exitcode if process.exitcode is not None else 1
        if self.metrics_dir is not None and process.pid is not None:
            mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        slot.process, slot.last_pid, slot.last_cause = None, process.pid, describe_exit(code)
        process.close()
        return code

    def _died(self, slot: _Slot, now: float) -> int | None:
        """A worker died while serving: schedule its replacement, or give up (an exit code)."""
        code = self._reap(slot)
        if code == EXIT_CONFIG:
            log.error(
                "worker %d (pid %s) could not start (%s): stopping the server",
                slot.index,
                slot.last_pid,
                slot.last_cause,
            )
            return EXIT_CONFIG
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > CRASH_WINDOW:
            self.deaths.popleft()
        recent = len(self.deaths)
        if recent >= CRASH_LIMIT:
            log.error(
                "crash loop: %d worker deaths within %gs (last: worker %d, pid %s, %s); "
                "exiting so that the pod is restarted",
                recent,
                CRASH_WINDOW,
                slot.index,
                slot.last_pid,
                slot.last_cause,
            )
            return EXIT_CRASH_LOOP
        delay = 0.0 if recent == 1 else min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (recent - 2))
        if delay:
            log.warning(
                "worker %d (pid %s) died (%s), %d deaths within %gs: backing off %gs",
                slot.index,
                slot.last_pid,
                slot.last_cause,
                recent,
                CRASH_WINDOW,
                delay,
            )
        slot.restart_at = now + delay
        return None

    # --- the loop ----------------------------------------------------------------

    def run(self) -> int:
        root = Path(tempfile.gettempdir())
        if self.settings.metrics_port:
            sweep_stale_metrics_dirs(root)
            self.metrics_dir = Path(
                tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-", dir=root)
            )
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        try:
            server = self._serve_metrics()
        except OSError as exc:
            self._remove_metrics_dir()
            where = f"{self.settings.host}:{self.settings.metrics_port}"
            print(f"error: cannot listen on {where} (metrics): {exc}", flush=True)
            return EXIT_CONFIG
        try:
            return self._supervise()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            self._remove_metrics_dir()

    def _serve_metrics(self) -> Any:
        if self.metrics_dir is None:
            return None
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        registry.register(self.restarts)
        server, _thread = start_http_server(
            self.settings.metrics_port, addr=self.settings.host, registry=registry
        )
        return server

    def _remove_metrics_dir(self) -> None:
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def _supervise(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_fd = signal.set_wakeup_fd(wake_w)

        def on_signal(signum: int, _frame: object) -> None:
            self.stop_signal = self.stop_signal or signal.Signals(signum).name

        handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            log.info(
                "supervising %d workers",
                len(self.slots),
                extra={"pids": [p.pid for p in self._live()]},
            )
            return self._loop(wake_r)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(wake_r)
            os.close(wake_w)

    def _loop(self, wake_r: int) -> int:
        give_up: int | None = None
        while give_up is None and self.stop_signal is None:
            now = time.monotonic()
            pending = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = max(0.0, min(pending) - now) if pending else None
            sentinels = {s.process.sentinel: s for s in self.slots if s.process is not None}
            ready = wait([wake_r, *sentinels], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            now = time.monotonic()
            for handle in ready:
                slot = sentinels.get(handle) if isinstance(handle, int) else None
                if slot is not None and give_up is None:
                    give_up = self._died(slot, now)
            if give_up is None and self.stop_signal is None:
                for slot in self.slots:
                    if slot.restart_at is not None and slot.restart_at <= now:
                        self._start(slot)
        if self.stop_signal is not None:
            log.info("stopping the workers", extra={"signal": self.stop_signal})
        return max(self._stop_all(), give_up or 0)

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for them (killing stragglers); the worst exit code."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + DRAIN_TIMEOUT + STOP_MARGIN
        worst = 0
        for slot in self.slots:
            slot.restart_at = None
            process = slot.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.error(
                    "worker %d (pid %s) did not stop in time: killed", slot.index, process.pid
                )
                process.kill()
            code = self._reap(slot)
            # one still starting (before its handler) dies of the SIGTERM: stopped as asked
            worst = max(worst, 0 if code == -signal.SIGTERM else abs(code))
        return worst

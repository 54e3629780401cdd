"""Fixed-rate load: exactly RATE requests a second over one keep-alive TLS connection.

wrk can only saturate; this sends one request every 1/RATE seconds on a fixed
schedule (not "as fast as the last answer allows") and records each latency,
from the moment the request is written to the moment the whole response is
read. The client is as lean as a Python client gets: the request bytes are
built once, the response is read by Content-Length on a raw ``ssl`` socket.

A send that starts late (the previous answer took longer than the interval)
is counted as ``late``, and its latency is also taken from the time it was due
(``p99_from_schedule_ms``), so a slow server cannot hide behind the schedule
(coordinated omission). The run ends on time: requests a slow server left no
time for are counted as ``missed``.

    python bench/rate.py --port P --body FILE [--rate 100] [--duration 10]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import time
from pathlib import Path


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


class Connection:
    def __init__(self, host: str, port: int, cafile: Path | None) -> None:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if cafile is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((host, port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.buffer = b""

    def exchange(self, request: bytes) -> int:
        """Send one request, read its whole response; return the HTTP status."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._read()
        self.buffer = rest[length:]
        return status

    def _read(self) -> bytes:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def _fill(self) -> None:
        self.buffer += self._read()


def run(
    host: str, port: int, path: str, body: bytes, *, rate: float, duration: float, warmup: float
) -> dict[str, object]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    connection = Connection(host, port, None)
    interval = 1.0 / rate
    latencies: list[float] = []
    from_schedule: list[float] = []
    late = errors = missed = 0
    total = int((warmup + duration) * rate)
    start = time.perf_counter() + 0.05
    measured_from = start + warmup
    end = start + warmup + duration
    for index in range(total):
        due = start + index * interval
        if time.perf_counter() >= end:  # the server fell behind the schedule: stop on time
            missed = total - index
            break
        now = time.perf_counter()
        if due - now > 0.002:
            time.sleep(due - now - 0.001)
        while time.perf_counter() < due:  # the last millisecond spun, for an exact start
            pass
        sent = time.perf_counter()
        status = connection.exchange(request)
        finished = time.perf_counter()
        if sent < measured_from:  # warm-up: by time, so a slow server is measured too
            continue
        if status != 200:
            errors += 1
        if sent - due > interval:
            late += 1
        latencies.append(finished - sent)
        from_schedule.append(finished - due)
    elapsed = time.perf_counter() - measured_from

    def ms(values: list[float], pct: float) -> float | None:
        return round(_percentile(values, pct) * 1000, 4) if values else None

    return {
        "rate": rate,
        "requests": len(latencies),
        "achieved_rate": round(len(latencies) / max(elapsed, 1e-9), 2),
        "errors": errors,
        "late": late,
        "missed": missed,
        "p50_ms": ms(latencies, 50),
        "p99_ms": ms(latencies, 99),
        "max_ms": ms(latencies, 100),
        "p99_from_schedule_ms": ms(from_schedule, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mutate")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    result = run(
        args.host,
        args.port,
        args.path,
        args.body.read_bytes(),
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
    )
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

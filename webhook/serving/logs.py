"""One JSON object per log line (on stderr), with the record's structured extras.

The line per admission decision is the one log line on the hot path, so it is
written by ``write_decision`` straight to stderr's byte stream, in the same
shape the formatter gives every other line (about 5x cheaper than a
``LogRecord`` through handlers and a formatter).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

try:
    import orjson

    def dumps_bytes(entry: dict[str, Any]) -> bytes:
        return orjson.dumps(entry, default=str)

except ImportError:

    def dumps_bytes(entry: dict[str, Any]) -> bytes:
        return json.dumps(entry, separators=(",", ":"), default=str).encode()


def dumps_line(entry: dict[str, Any]) -> str:
    return dumps_bytes(entry).decode()


DECISIONS_LOGGER = "task_pod_webhook.admission"
_decisions = logging.getLogger(DECISIONS_LOGGER)
_worker: int | None = None


def write_decision(decision: dict[str, Any]) -> None:
    """The JSON line for one admission decision, when INFO is enabled for it."""
    if not _decisions.isEnabledFor(logging.INFO):
        return
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": DECISIONS_LOGGER,
        "msg": "admission",
        "decision": decision,
    }
    if _worker is not None:
        entry["worker"] = _worker
    line = dumps_bytes(entry) + b"\n"
    stream = getattr(sys.stderr, "buffer", None)
    if stream is None:  # a text-only stderr (a test's capture)
        sys.stderr.write(line.decode())
        return
    stream.write(line)
    stream.flush()


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps_line(entry)


def setup_logging(level: str = "INFO", worker: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    global _worker  # noqa: PLW0603 - one process, one worker index
    _worker = worker
    if worker is not None:
        old = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = old(*args, **kwargs)
            record.worker = worker
            return record

        logging.setLogRecordFactory(factory)

"""Command-line flags with environment variable twins (SPEC §11).

Every flag has a twin, ``TPW_`` plus the flag's name in upper case with ``-``
as ``_`` (``--metrics-port`` ↔ ``TPW_METRICS_PORT``); a flag on the command
line wins. A bad twin is a usage error (exit 2) that names the variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def env_name(flag: str) -> str:
    return "TPW_" + flag.lstrip("-").upper().replace("-", "_")


def env_default(flag: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(env_name(flag))
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        detail = f": {exc}" if isinstance(exc, argparse.ArgumentTypeError) else ""
        raise SystemExit(
            f"error: environment variable {env_name(flag)}={raw!r} is not valid for {flag}{detail}"
        ) from None


def as_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {value}")
    return value


def seconds(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def label_map(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` as a label map, every key and value checked as Kubernetes does."""
    from webhook.policy.syntax import label_key_error, label_value_error

    labels: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, equals, value = item.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{item!r} is not k=v")
        error = label_key_error(key) or label_value_error(value)
        if error:
            raise argparse.ArgumentTypeError(f"{item!r}: {error}")
        labels[key] = value
    return labels


def opt(
    parser: argparse._ActionsContainer,
    flag: str,
    default: Any = None,
    kind: Callable[[str], Any] = str,
    help: str = "",
    *,
    short: str | None = None,
    **kwargs: Any,
) -> None:
    parser.add_argument(
        *((short, flag) if short else (flag,)),
        default=env_default(flag, default, kind),
        type=kind,
        help=f"{help} [env {env_name(flag)}]" + (f" (default: {default})" if default else ""),
        **kwargs,
    )


def flag(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    parser.add_argument(
        flag,
        action="store_true",
        default=env_default(flag, False, as_bool),
        help=f"{help} [env {env_name(flag)}]",
    )

"""Kubernetes resource quantities.

Values are parsed with ``kubernetes.utils.parse_quantity`` after a check of the
apimachinery grammar (``<signedNumber><suffix>``), which that function is more
lenient about (it takes ``nan``, ``inf`` and ``1_000`` through ``Decimal``).
Resource quantities must not be negative. We never re-format a quantity: a
value we write is always the policy's or the pod's own spelling, so untouched
quantities keep theirs.

The apiserver's Quantity decoder also takes a bare JSON number (``cpu: 1`` in
YAML), so numbers are accepted and keep their spelling too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from kubernetes.utils.quantity import parse_quantity

_GRAMMAR = re.compile(
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
    r"(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?"
)


class QuantityError(ValueError):
    """A value that is not a valid, non-negative Kubernetes quantity."""


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal:
    if not _GRAMMAR.fullmatch(text):
        raise QuantityError(f"{text!r} is not a valid quantity")
    try:
        value: Decimal = parse_quantity(text)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise QuantityError(f"{text!r} is not a valid quantity") from exc
    if value < 0:
        raise QuantityError(f"{text!r} is negative")
    return value


def parse(value: object) -> Decimal:
    """Parse a quantity as found in a manifest (string, or a JSON number)."""
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _parse_text(str(value))
    raise QuantityError(f"{value!r} is not a quantity (expected a string)")


def is_quantity(value: object) -> bool:
    try:
        parse(value)
    except QuantityError:
        return False
    return True

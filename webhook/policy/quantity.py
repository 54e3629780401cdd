"""Kubernetes resource quantities.

Values are parsed with ``kubernetes.utils.parse_quantity`` after a check of the
apimachinery grammar (``<signedNumber><suffix>``), which that function is more
lenient about (it takes ``nan``, ``inf`` and ``1_000`` through ``Decimal``).
Resource quantities must not be negative. We never re-format a quantity: a
value we write is always the policy's or the pod's own spelling, so untouched
quantities keep theirs.

The apiserver's Quantity decoder also takes a bare JSON number (``cpu: 1`` in
YAML), so numbers are accepted and keep their spelling too.

``parse_quantity`` lives in ``kubernetes.utils.quantity``, a module that needs
nothing but ``decimal``; importing it the usual way runs the package's
``__init__``, which loads the whole API client (about 20 MB of resident memory
that a server without API access never uses). So the module is loaded from its
file inside the installed ``kubernetes`` package, and imported normally only
if that file is not where it is expected.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any


def _load_parse_quantity() -> Callable[[Any], Decimal]:
    package = importlib.util.find_spec("kubernetes")  # finds, does not import
    if package is not None and package.origin is not None:
        path = Path(package.origin).parent / "utils" / "quantity.py"
        spec = importlib.util.spec_from_file_location("_kubernetes_utils_quantity", path)
        if path.is_file() and spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            parse: Callable[[Any], Decimal] = module.parse_quantity
            return parse
    from kubernetes.utils.quantity import parse_quantity as imported

    return imported


parse_quantity = _load_parse_quantity()

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
        value = parse_quantity(text)
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

"""JSON encode/decode: orjson when installed (the ``fast`` extra), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # the stdlib fallback keeps working without the extra
    _orjson = None

HAVE_ORJSON = _orjson is not None


class JSONDecodeError(ValueError):
    pass


def loads(data: bytes | str) -> Any:
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError as exc:
            raise JSONDecodeError(str(exc)) from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JSONDecodeError(str(exc)) from None


def dumps(obj: Any) -> bytes:
    if _orjson is not None:
        data: bytes = _orjson.dumps(obj)
        return data
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_sorted(obj: Any) -> bytes:
    """Compact JSON with sorted keys: the same bytes for the same data."""
    if _orjson is not None:
        data: bytes = _orjson.dumps(obj, option=_orjson.OPT_SORT_KEYS)
        return data
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()

"""Stored values as JSON: what JSON has stays itself, anything else becomes its repr."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from statek.models.containers import container_kind, plain_copy

_MAX_DEPTH = 64


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-encodable copy of a stored value (dbzero containers included); values JSON
    cannot carry (tuples aside, which become arrays) are given as {"repr": ...}."""
    if value is None or type(value) in (str, bool, int):
        return value
    if isinstance(value, str):
        return str(value)
    if type(value) is float:
        return value if math.isfinite(value) else {"repr": repr(value)}
    if depth >= _MAX_DEPTH:
        return {"repr": "..."}
    kind = container_kind(value)
    if kind == "Dict" or (kind is None and isinstance(value, Mapping)):
        if all(isinstance(k, str) for k in value):
            return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
        return {"repr": _repr(value)}
    if kind == "List" or kind == "Tuple" or (kind is None and isinstance(value, list | tuple)):
        return [jsonable(v, depth + 1) for v in value]
    return {"repr": _repr(value)}


def _repr(value: Any) -> str:
    """repr() of a value JSON cannot carry, of its plain copy if it holds dbzero containers
    (they print as their built-in counterparts), cut at 10,000 characters."""
    with contextlib.suppress(ValueError):  # nested too deeply: repr it as it is
        value = plain_copy(value)
    return repr(value)[:10_000]

"""Stored values as JSON: what JSON has stays itself, anything else becomes its repr."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    if isinstance(value, Mapping) or type(value).__name__ == "Dict":  # dbzero's Dict
        if all(isinstance(k, str) for k in value):
            return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
        return {"repr": repr(dict(value))[:10_000]}
    if isinstance(value, list | tuple) or type(value).__name__ in ("List", "Tuple"):
        return [jsonable(v, depth + 1) for v in value]
    return {"repr": repr(value)[:10_000]}

"""What dbzero can persist, checked before anything is written.

dbzero rejects some values only half-way through a write (timedelta, frozenset, Enum members,
UUID, ints over 64 bits, lambdas, arbitrary objects). Checking first lets a call fail with the
offending key and type and leave nothing half-made behind.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

import dbzero as db0

from statek.errors import UnstorableValueError

_SCALARS = (str, bytes, bool, float, type(None), datetime.date, decimal.Decimal)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_DB0_CONTAINERS = ("List", "Dict", "Set", "Tuple", "ByteArray", "Index")


def utf8_encodable(text: str) -> bool:
    """dbzero stores strings as UTF-8: one with a lone surrogate raises UnicodeEncodeError,
    and inside a tuple crashes the process (dbzero 0.7.0), so such strings are refused."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_reason(value: Any, _depth: int = 0) -> str | None:
    """None when dbzero can store `value`; else a short description of the first culprit."""
    if isinstance(value, str):
        return None if utf8_encodable(value) else "a str with a lone surrogate (not UTF-8)"
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, int):
        return None if _INT_MIN <= value <= _INT_MAX else f"int {value} does not fit in 64 bits"
    if _depth > 64:
        return "nesting deeper than 64 levels"
    if isinstance(value, list | tuple | set):
        for item in value:
            reason = unstorable_reason(item, _depth + 1)
            if reason is not None:
                return reason
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            reason = unstorable_reason(key, _depth + 1) or unstorable_reason(item, _depth + 1)
            if reason is not None:
                return reason
        return None
    if db0.is_memo(value) or db0.is_enum_value(value):
        return None
    if type(value).__name__ in _DB0_CONTAINERS and type(value).__module__ in ("builtins", "dbzero"):
        return None
    if isinstance(value, type):
        return None
    return f"{type(value).__module__}.{type(value).__qualname__} is not storable"


def is_storable(value: Any) -> bool:
    return unstorable_reason(value) is None


def check_storable_mapping(values: Mapping[str, Any], what: str) -> None:
    """Raise UnstorableValueError naming the key and type of the first value dbzero rejects."""
    for key, value in values.items():
        if not isinstance(key, str):
            raise UnstorableValueError(
                f"{what}: key {key!r} must be a str, not {type(key).__name__}")
        reason = unstorable_reason(value)
        if reason is not None:
            raise UnstorableValueError(
                f"{what}[{key!r}] of type {type(value).__name__} cannot be stored in dbzero: "
                f"{reason}"
            )

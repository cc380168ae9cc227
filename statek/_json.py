"""One JSON codec for the whole package: orjson when installed (statek[fast]), stdlib otherwise.

Both backends produce compact UTF-8 bytes (no spaces, non-ASCII kept as UTF-8), write NaN and
infinities as null, and encode dataclasses, enums, UUIDs and datetimes the same way, so
request bodies and stored payloads do not depend on which one is installed. Encoding errors
are `TypeError`; decoding errors are `ValueError` (`json.JSONDecodeError`, which orjson's
error subclasses). Known difference: orjson rejects non-string dict keys, stdlib coerces them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["JSON_BACKEND", "dumps", "loads"]


def _default(obj: Any) -> Any:
    """Stdlib fallback for the types orjson encodes natively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None, as orjson does; only walked when the fast path refused."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if (dataclasses.is_dataclass(obj) and not isinstance(obj, type)) or isinstance(obj, enum.Enum):
        return _finite(_default(obj))
    return obj


_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
)


def _stdlib_dumps(obj: Any) -> bytes:
    try:
        text = _encoder.encode(obj)
    except ValueError:  # a non-finite float somewhere, or a circular reference
        try:
            text = _encoder.encode(_finite(obj))
        except (ValueError, RecursionError) as exc:
            raise TypeError(str(exc)) from exc
    return text.encode("utf-8")


def _stdlib_loads(data: bytes | bytearray | memoryview | str) -> Any:
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


_dumps: Callable[[Any], bytes]
_loads: Callable[[bytes | bytearray | memoryview | str], Any]

try:
    import orjson
except ImportError:
    JSON_BACKEND = "json"
    _dumps = _stdlib_dumps
    _loads = _stdlib_loads
else:
    JSON_BACKEND = "orjson"
    _dumps = orjson.dumps
    _loads = orjson.loads


def dumps(obj: Any) -> bytes:
    """Serialize `obj` to compact UTF-8 JSON bytes (TypeError if it cannot be encoded)."""
    return _dumps(obj)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text or UTF-8 bytes (ValueError if it is not valid JSON)."""
    return _loads(data)

"""Outbox records: length- and checksum-framed pickles that only plain data crosses.

A frame is `<u32 length><u32 crc32(payload)><payload>`. A frame cut short (a producer killed
mid-write) or failing its checksum is never applied: the reader stops before it. Payloads are
pickles written by `dumps`, read back by an unpickler that resolves no global except the
few value types statek stores (datetime, Decimal); objects already in dbzero travel as their
uuid and classes as their module and name, which the reader checks before using.
"""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
import struct
import sys
import zlib
from typing import Any

import dbzero as db0

from statek.models.by_uuid import fetch_or_none, looks_like_uuid

HEADER = struct.Struct("<II")
#: A frame above this is refused by the writer and treated as damage by the reader.
MAX_FRAME = 64 * 1024 * 1024

_ALLOWED = {
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "timezone"): datetime.timezone,
    ("datetime", "timedelta"): datetime.timedelta,
    ("decimal", "Decimal"): decimal.Decimal,
}


class RecordError(ValueError):
    """A record that cannot be read back (damaged, or naming something not allowed)."""


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, type):
            return ("c", obj.__module__, obj.__qualname__)
        if db0.is_memo(obj):
            return ("m", str(db0.uuid(obj)))
        return None


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RecordError(f"an outbox record names {module}.{name}, which is not allowed")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple and len(pid) == 2 and pid[0] == "m":
            return _memo(pid[1])
        if type(pid) is tuple and len(pid) == 3 and pid[0] == "c":
            return _class(pid[1], pid[2])
        raise RecordError(f"an outbox record holds an unknown reference {pid!r:.80}")


def _memo(uuid: Any) -> Any:
    if not looks_like_uuid(uuid):
        raise RecordError("an outbox record refers to an object by a malformed uuid")
    found = fetch_or_none(uuid)
    if found is None:
        raise RecordError(f"an outbox record refers to object {uuid}, which is gone")
    return found


def _class(module: Any, qualname: Any) -> type:
    """A class by name, only from a module already imported (as dbzero reads classes back;
    nothing is imported on a record's say-so)."""
    if type(module) is not str or type(qualname) is not str:
        raise RecordError("an outbox record names a class malformed")
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None) if found is not None else None
    if not isinstance(found, type):
        raise RecordError(f"an outbox record names class {module}.{qualname}, not loaded here")
    return found


def dumps(item: Any, *, plain: bool = False) -> bytes:
    """One framed record holding `item`. `plain`: the caller knows it holds only scalars and
    built-in containers (no dbzero object, no class), so no object needs looking at."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * HEADER.size)
    (pickle.Pickler if plain else _Pickler)(buffer, protocol=5).dump(item)
    frame = buffer.getbuffer()
    size = len(frame) - HEADER.size
    if size > MAX_FRAME:
        raise ValueError(f"an outbox record of {size} bytes is over the {MAX_FRAME} limit")
    HEADER.pack_into(frame, 0, size, zlib.crc32(frame[HEADER.size:]))
    del frame
    return buffer.getvalue()


def loads(payload: bytes | memoryview) -> Any:
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except RecordError:
        raise
    except Exception as exc:  # a damaged payload can fail in many ways
        raise RecordError(f"an outbox record cannot be read: {exc}") from None


def split(data: bytes, base: int) -> tuple[list[tuple[int, bytes]], int, bool]:
    """The complete frames at the start of `data` as (end offset, payload), offsets counted
    from `base`; then the offset after the last one; then whether the rest is damaged (a
    checksum that fails, or a length over the limit) rather than merely incomplete."""
    frames: list[tuple[int, bytes]] = []
    view = memoryview(data)
    at = 0
    while len(data) - at >= HEADER.size:
        size, crc = HEADER.unpack_from(data, at)
        if size > MAX_FRAME:
            return frames, base + at, True
        end = at + HEADER.size + size
        if end > len(data):
            break
        payload = view[at + HEADER.size:end]
        if zlib.crc32(payload) != crc:
            return frames, base + at, True
        frames.append((base + end, bytes(payload)))
        at = end
    return frames, base + at, False


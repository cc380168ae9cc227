"""The wire format between the scheduler process and its executor processes.

A frame is a 4-byte little-endian length and a pickle (protocol 5) of plain data: tuples,
lists, dicts, sets, str, bytes, numbers, None, dates, decimals, and the two markers below.
The scheduler reads what an executor sends with `loads_untrusted`, which refuses every other
class, so a compromised executor cannot make the scheduler import or call anything.
"""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
import re
import struct
from typing import Any

HEADER = struct.Struct("<I")
#: A frame larger than this is a protocol error (the peer is killed).
MAX_FRAME = 256 * 1024 * 1024

#: Classes a frame may name: value types dbzero stores, and the markers.
_ALLOWED_CLASSES: dict[tuple[str, str], Any] = {
    ("decimal", "Decimal"): decimal.Decimal,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("builtins", "complex"): complex,
}


class ProtocolError(Exception):
    """A peer sent something that is not a frame of plain data."""


class Ref:
    """A stored object (a future, an agent, a job) handed to an executor: only its token
    crosses; the scheduler resolves it, and only for objects it gave that job."""

    __slots__ = ("kind", "token")

    def __init__(self, token: str, kind: str) -> None:
        if type(token) is not str or type(kind) is not str:
            raise ProtocolError("a Ref holds two strings")
        self.token = token
        self.kind = kind

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Ref, (self.token, self.kind))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.token}>"


class Opaque(Ref):
    """A host value an executor may hold and hand back but not look into (a class, an
    enum member, a host function given as a shared variable)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Opaque, (self.token, self.kind))


_ALLOWED_CLASSES[(__name__, "Ref")] = Ref
_ALLOWED_CLASSES[(__name__, "Opaque")] = Opaque


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, classes: dict[tuple[str, str], Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._classes = classes

    def find_class(self, module: str, name: str) -> Any:
        found = self._classes.get((module, name))
        if found is None:
            raise ProtocolError(f"frame names {module}.{name}, which is not plain data")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise ProtocolError("frames carry no persistent ids")


def dumps(message: Any) -> bytes:
    """One frame (header included)."""
    body = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(body)) + body


def loads_untrusted(body: bytes, classes: dict[tuple[str, str], Any] | None = None) -> Any:
    """Decode a frame body from an untrusted peer: plain data and the markers only (or the
    given class table, for a peer that maps the markers to its own classes)."""
    try:
        return _PlainUnpickler(body, _ALLOWED_CLASSES if classes is None else classes).load()
    except ProtocolError:
        raise
    except Exception as exc:  # truncated or malformed: one error type for the caller
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from None


def allowed_classes() -> dict[tuple[str, str], Any]:
    """A copy of the class table, for a peer that maps the markers differently."""
    return dict(_ALLOWED_CLASSES)


class FrameBuffer:
    """Bytes received so far; yields complete frame bodies."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._data
        data += chunk
        bodies: list[bytes] = []
        offset = 0
        size = len(data)
        while size - offset >= 4:
            (length,) = HEADER.unpack_from(data, offset)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
            end = offset + 4 + length
            if end > size:
                break
            bodies.append(bytes(data[offset + 4 : end]))
            offset = end
        if offset:
            del data[:offset]
        return bodies


# --- exceptions across the boundary -------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")


def encode_exception(exc: BaseException) -> tuple[str, str, tuple[Any, ...]]:
    """("err", class name, args): args kept when they are plain scalars, else the message."""
    args = exc.args
    if not all(type(a) in (str, int, float, bool, type(None)) for a in args):
        args = (str(exc),)
    return ("err", type(exc).__name__, tuple(args))


_made: dict[str, type[Exception]] = {}


def exception_class(name: str) -> type[Exception]:
    """The builtin exception class of that name, statek's SandboxViolation (a refusal reads
    and is handled as in-process), or an Exception subclass named after it (a host exception
    type the executor does not have)."""
    import builtins

    from statek.errors import SandboxViolation

    if type(name) is not str or not _NAME.match(name):
        name = "RuntimeError"
    if name == "SandboxViolation":
        return SandboxViolation
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    made = _made.get(name)
    if made is None:
        made = _made[name] = type(name, (Exception,), {"__module__": "statek.host"})
    return made


def decode_exception(name: str, args: Any) -> Exception:
    cls = exception_class(name)
    if not isinstance(args, tuple):
        args = (str(args),)
    try:
        return cls(*args)
    except Exception:
        return cls(*(str(a) for a in args))

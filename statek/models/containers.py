"""dbzero's container types in one place: how to recognise them and how to copy them out.

dbzero 0.7.0 converts a stored list, dict, set or tuple into its own `List`, `Dict`, `Set` or
`Tuple` (a `db0.bytearray` is a `ByteArray`; `db0.index()` an `Index`) and hands those back on
every read. They report module "builtins", are not subclasses of the built-ins (a `Dict` is not
a `Mapping`, a `Tuple` is unhashable) and are importable from nowhere: the classes are only
reachable from instances, which need an open prefix. So they are recognised here by module and
name, confirmed to be static (C) types so that a class defined by job code cannot pass for one,
and remembered once seen. Every module asks this one; none tests class names itself.
"""

from __future__ import annotations

import datetime
import decimal
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

#: The container kinds, named as dbzero 0.7.0 names their classes.
ContainerKind = Literal["List", "Dict", "Set", "Tuple", "ByteArray"]
#: dbzero's other stored collection: a value dbzero stores, never copied out.
IndexKind = Literal["Index"]
StoredKind = ContainerKind | IndexKind

CONTAINER_KINDS: Final[frozenset[ContainerKind]] = frozenset(get_args(ContainerKind))
#: Each container kind -> the built-in type that holds the same items.
PLAIN_TYPES: Final[MappingProxyType[ContainerKind, type]] = MappingProxyType({
    "List": list, "Dict": dict, "Set": set, "Tuple": tuple, "ByteArray": bytearray})
#: Kinds that take item assignment (`c[k] = v`).
ITEM_WRITABLE_KINDS: Final[frozenset[ContainerKind]] = frozenset({"List", "Dict", "ByteArray"})
#: Kinds job code may change in place (item assignment or mutating methods).
MUTABLE_KINDS: Final[frozenset[ContainerKind]] = frozenset({"List", "Dict", "Set", "ByteArray"})
#: Kinds dbzero 0.7.0 refuses as a set element or dict key.
UNHASHABLE_KINDS: Final[frozenset[StoredKind]] = frozenset(
    {"List", "Dict", "Set", "ByteArray", "Index"})
#: Kinds that store their items by hash (a key or element must be hashable by dbzero).
HASHED_KINDS: Final[frozenset[ContainerKind]] = frozenset({"Set", "Dict"})
#: Kinds whose items are an ordered sequence (a definition key lists them in order).
SEQUENCE_KINDS: Final[frozenset[ContainerKind]] = frozenset({"List", "Tuple"})

_NAMES: Final[frozenset[str]] = frozenset(get_args(ContainerKind)) | {"Index"}
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class made by a class statement
#: dbzero classes seen so far -> their kind (a handful of entries: one per dbzero class).
_seen: dict[type, StoredKind] = {}
#: Deepest nesting `plain_copy` walks (stored values are at most 64 levels deep).
MAX_COPY_DEPTH: Final = 100
_ATOMS: Final = frozenset({str, int, float, bool, type(None), bytes, complex, datetime.date,
                           datetime.datetime, datetime.time, decimal.Decimal})


def stored_kind_of_type(cls: type) -> StoredKind | None:
    """The kind of dbzero class `cls` (containers and Index), or None for any other class."""
    kind = _seen.get(cls)
    if kind is not None:
        return kind
    if cls.__module__ != "builtins" or cls.__name__ not in _NAMES or cls.__flags__ & _HEAPTYPE:
        return None
    kind = _seen[cls] = cls.__name__  # type: ignore[assignment]  # a name in _NAMES
    return kind


def kind_of_type(cls: type) -> ContainerKind | None:
    """The container kind of class `cls`, or None (an Index is not a container)."""
    kind = stored_kind_of_type(cls)
    return None if kind == "Index" else kind


def container_kind(value: object) -> ContainerKind | None:
    """"List", "Dict", "Set", "Tuple" or "ByteArray" for a dbzero container, else None."""
    return kind_of_type(type(value))


def is_container(value: object) -> bool:
    """Whether `value` is a dbzero container (what a stored list/dict/set/tuple reads as)."""
    return kind_of_type(type(value)) is not None


def is_mutable_container(value: object) -> bool:
    """Whether `value` is a dbzero container job code may change in place (not a Tuple)."""
    return kind_of_type(type(value)) in MUTABLE_KINDS


def is_stored_collection(value: object) -> bool:
    """Whether `value` is a dbzero container or Index (both are stored as they are)."""
    return stored_kind_of_type(type(value)) is not None


def plain_copy(value: Any, *, mutable_bytes: bool = False) -> Any:
    """`value` with every dbzero container, however deep, copied into its built-in
    counterpart; everything else (scalars, memo objects) is kept, and a plain container is
    returned itself unless something inside it was copied. A ByteArray becomes bytes (what
    dbzero and JSON store), or a bytearray with `mutable_bytes` (a copy job code may change).
    ValueError past `MAX_COPY_DEPTH` levels."""
    return _copy(value, bytearray if mutable_bytes else bytes, 0)


def _copy(value: Any, bytes_type: type[bytes] | type[bytearray], depth: int) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    kind = kind_of_type(cls)
    if kind is None:
        if cls is dict or cls is list or cls is tuple or cls is set or cls is frozenset:
            return _copy_plain(value, cls, bytes_type, depth)
        return value
    if depth >= MAX_COPY_DEPTH:
        raise ValueError(f"value is nested more than {MAX_COPY_DEPTH} levels deep to copy")
    if kind == "ByteArray":  # iterating one fails at its end (RuntimeError, dbzero 0.7.0)
        return bytes_type(value.decode("latin-1").encode("latin-1"))
    if kind == "Dict":
        return {_copy(k, bytes_type, depth + 1): _copy(v, bytes_type, depth + 1)
                for k, v in value.items()}
    return PLAIN_TYPES[kind](_copy(item, bytes_type, depth + 1) for item in value)


def _copy_plain(value: Any, cls: type, bytes_type: type[bytes] | type[bytearray],
                depth: int) -> Any:
    """A built-in container: itself when nothing inside is a dbzero container."""
    if depth >= MAX_COPY_DEPTH:
        raise ValueError(f"value is nested more than {MAX_COPY_DEPTH} levels deep to copy")
    if cls is dict:
        pairs = [(_copy(k, bytes_type, depth + 1), _copy(v, bytes_type, depth + 1))
                 for k, v in value.items()]
        if all(k is old_k and v is old_v for (k, v), (old_k, old_v)
               in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    items = [_copy(item, bytes_type, depth + 1) for item in value]
    if all(new is old for new, old in zip(items, value, strict=True)):
        return value
    return cls(items)

"""Checks on values job code writes, made before dbzero sees them.

Moved here from the interpreter so every write path (locals, persisted containers, exit
status, console) shares one set of rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statek.models.storable import is_storable, utf8_encodable

#: `__name__` of job namespaces, hence `__module__` of the classes job code defines.
JOB_MODULE = "__statek_job__"
#: Names of dbzero's container types (what persisted lists, dicts, bytearrays come back as).
_DB0_WRITABLE = frozenset({"List", "Dict", "ByteArray"})


def can_persist(value: Any, depth: int = 0) -> bool:
    """Whether dbzero can store `value` so that it loads again in a new process: as
    `is_storable`, except that a class the job defined (stored by reference to a module
    that exists only in this process) is not."""
    kind = type(value)
    if kind is str:
        return utf8_encodable(value)
    if kind is float or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-(2**63) <= value < 2**63)
    if depth > 64:
        return False
    if kind is list or kind is tuple or kind is set:
        return all(can_persist(item, depth + 1) for item in value)
    if kind is dict:
        return all(can_persist(k, depth + 1) and can_persist(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, type) and value.__module__ == JOB_MODULE:
        return False
    return is_storable(value)


def is_persisted_container(obj: Any) -> bool:
    kind = type(obj)
    return kind.__name__ in _DB0_WRITABLE and kind.__module__ == "builtins"


_write_hooks: dict[int, tuple[Any, Callable[[Any], Any], Callable[..., None]]] = {}


def allow_persisted_writes(g: dict[str, Any]) -> None:
    """Let restricted code assign items of dbzero containers (its persisted locals come back
    as those) as it may of plain lists and dicts; anything else still meets the sandbox's
    write guard."""
    guarded_write = g.get("_write_")
    if guarded_write is None:
        return
    found = _write_hooks.get(id(guarded_write))
    if found is None or found[0] is not guarded_write:
        augmented = g["_augitem_"]
        inplace = g["_inplacevar_"]

        def write(obj: Any) -> Any:
            return obj if is_persisted_container(obj) else guarded_write(obj)

        def augmented_item(obj: Any, key: Any, op: str, value: Any) -> None:
            if is_persisted_container(obj):
                obj[key] = inplace(op, obj[key], value)
            else:
                augmented(obj, key, op, value)

        found = _write_hooks[id(guarded_write)] = (guarded_write, write, augmented_item)
    g["_write_"] = found[1]
    g["_augitem_"] = found[2]

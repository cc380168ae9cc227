"""The preview kept of an exit status the store cannot take, written without running any
of the job's code: a class the job defined may have a `__repr__` that loops, allocates or
prints, and it would run outside the step's budget (in-process) or after it (in an
isolated executor). Both execution modes use this one function, so a job's result reads
the same whichever runs it."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from statek.models.value_checks import EXIT_PREVIEW_CHARS

#: Types whose repr is the standard library's: plain data, shown as it is.
_PLAIN_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, decimal.Decimal,
                            datetime.date, datetime.datetime})
_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})
_MAX_DEPTH = 32


def preview(value: Any) -> str | None:
    """`{'k': <K object>}` for a value holding objects of the job's own classes (cut to
    EXIT_PREVIEW_CHARS), or None when it is plain data only: plain data the store refuses
    (an int past 64 bits, a Decimal out of range) is then recorded by `Job.finish` as a
    bounded repr and an error naming the problem, not hidden behind a preview."""
    parts: list[str] = []
    size = 0
    foreign = False

    def walk(item: Any, depth: int) -> None:
        nonlocal size, foreign
        if size > EXIT_PREVIEW_CHARS:
            return
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            text = "<int>" if kind is int and item.bit_length() > 4000 else repr(item)
        elif kind in _CONTAINERS and depth < _MAX_DEPTH:
            opening, closing = "[]" if kind is list else "()" if kind is tuple else "{}"
            parts.append(opening)
            items = item.items() if kind is dict else item
            for index, entry in enumerate(items):
                if index:
                    parts.append(", ")
                if kind is dict:
                    walk(entry[0], depth + 1)
                    parts.append(": ")
                    walk(entry[1], depth + 1)
                else:
                    walk(entry, depth + 1)
                if size > EXIT_PREVIEW_CHARS:
                    break
            parts.append(closing)
            return
        elif isinstance(item, type):  # read from the type's slots, not by running its code
            foreign = True
            text = f"<class '{item.__module__}.{item.__qualname__}'>"
        else:
            foreign = True
            text = f"<{kind.__qualname__} object>"
        parts.append(text)
        size += len(text)

    walk(value, 0)
    if not foreign:
        return None
    text = "".join(parts)
    return text if len(text) <= EXIT_PREVIEW_CHARS else text[:EXIT_PREVIEW_CHARS] + "..."

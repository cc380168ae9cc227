"""Kernels of the storage path in pure Python: the specification ``_storage_c`` matches.

* the packed chunk codec of the push queue's fifos: its stored form (a list of entries,
  each a JSON string of a run of plain items, or a count followed by that many items'
  values stored as they are) is described in ``statek.models.fifo_pack``;
* ``Transition``, the block no dbzero autocommit may split (``statek.store.transition``):
  every step and every push enters a few, so its cost is paid per job and per message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from statek import _json

__all__ = ["MAX_DEPTH", "Transition", "is_plain_json", "json_text", "pack", "unpack"]

MAX_DEPTH = 64
"""Deepest container nesting packed as JSON (deeper values are stored as they are)."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # what every JSON backend gives back


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """True when JSON decoding `value`'s encoding gives back an equal value of the same types
    (a str holding a lone surrogate passes here: the encoder refuses it, see `json_text`)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if kind is float:
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if kind is list:
        return all(is_plain_json(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(key) is str and is_plain_json(item, depth + 1)
                   for key, item in value.items())
    return False


def _all_plain(values: Sequence[Any]) -> bool:
    # A str (most values: job uuids, text) is taken without a call. A loop, not all() over
    # a generator: ~2,200 fewer instructions per single push (benchmarks.queue_instructions).
    for value in values:  # noqa: SIM110
        if type(value) is not str and not is_plain_json(value):
            return False
    return True


def json_text(values: Sequence[Any]) -> str | None:
    """The JSON array of `values` (checked by `is_plain_json`), or None when the encoder
    refuses one: a str holding a lone surrogate."""
    try:
        return _json.dumps(values if type(values) is list else list(values)).decode()
    except (TypeError, ValueError):
        return None


def pack(values: Sequence[Any], stride: int) -> list[Any]:
    """The entries storing `values` (items of `stride` consecutive values), in order."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if _all_plain(values):  # the common case: one string for the lot
        return _encoded(values, stride)
    plain = [_all_plain(values[i:i + stride])
             for i in range(0, len(values), stride)]
    entries: list[Any] = []
    start = 0
    while start < len(plain):
        end = start
        while end < len(plain) and plain[end] == plain[start]:
            end += 1
        run = values[start * stride:end * stride]
        if plain[start]:
            entries.extend(_encoded(run, stride))
        else:
            entries.append(end - start)
            entries.extend(run)
        start = end
    return entries


def _encoded(run: Sequence[Any], stride: int) -> list[Any]:
    text = json_text(run)
    if text is not None:
        return [text]
    if len(run) <= stride:  # a lone surrogate: find the items JSON cannot take
        return [1, *run]
    entries: list[Any] = []
    for i in range(0, len(run), stride):
        entries.extend(_encoded(run[i:i + stride], stride))
    return entries


def unpack(entries: Sequence[Any], stride: int) -> list[Any]:
    """The flat values a packed chunk's entries store, in order.

    Entries `pack` cannot have written (a count that is not a positive int or runs past the
    end, a string that is not a JSON array of whole items) raise ValueError naming the
    entry: read on, a damaged chunk would loop forever or shift every later item's values."""
    values: list[Any] = []
    i, count = 0, len(entries)
    while i < count:
        entry = entries[i]
        if type(entry) is str:
            try:
                run = _json.loads(entry)
            except ValueError:
                run = None
            if type(run) is not list or len(run) % stride:
                _damaged(i, entry, f"is not a JSON array of items of {stride} value(s)")
            values.extend(run)
            i += 1
        elif type(entry) is int and entry > 0 and i + entry * stride < count:
            end = i + 1 + entry * stride
            values.extend(entries[i + 1:end])
            i = end
        else:
            _damaged(i, entry, f"is not a count of the {count - i - 1} value(s) after it "
                     f"(items of {stride})")
    return values


def _damaged(index: int, entry: Any, why: str) -> NoReturn:
    raise ValueError(f"damaged packed fifo chunk: entry {index} ({entry!r:.80}) {why}")


class Transition:
    """A re-entrant block that holds `take_lock()`'s lock while `autocommitting` (a live
    collection, read at each outermost entry) is not empty, and nothing otherwise.

    Inner blocks join the outermost one: taking dbzero's lock again inside it can deadlock
    dbzero 0.7.0. One depth for the process: transitions never span an await."""

    __slots__ = ("_autocommitting", "_depth", "_lock", "_take_lock")

    def __init__(self, autocommitting: Collection[str],
                 take_lock: Callable[[], AbstractContextManager[Any]]) -> None:
        self._autocommitting = autocommitting
        self._take_lock = take_lock
        self._depth = 0
        self._lock: AbstractContextManager[Any] | None = None

    def __enter__(self) -> None:
        if self._depth == 0 and self._autocommitting:
            lock = self._take_lock()
            lock.__enter__()
            self._lock = lock
        self._depth += 1

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._lock is not None:
            lock, self._lock = self._lock, None
            lock.__exit__(*exc)

    @property
    def active(self) -> bool:
        """Whether a block is open."""
        return self._depth > 0

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Transition belongs to its process and cannot be pickled")

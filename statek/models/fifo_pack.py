"""The packed form of a fifo chunk: a pushed run of plain-JSON items stored as one string.

dbzero charges by stored value: reading one back costs about 1.4 µs whatever its size, and
storing one about 2 µs, while a JSON string of a whole run of values decodes at about
0.13 µs per value (docs/costs.md C31). A queued message is two values (job uuid, message),
so a drain that read them one by one spent more time materialising values than delivering.

A packed chunk is a list of entries, each either
* a `str`: the JSON array of a run of items' values, flat (`stride` values per item); or
* an `int` k followed by the k items' values stored as they are, for items holding a value
  JSON would not give back unchanged (a tuple, a date, bytes, a memo reference, a non-str
  dict key, a non-finite float, an int beyond 64 bits, a lone surrogate).

A run decodes to exactly the values pushed, so consumers cannot tell the forms apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from statek import _json

#: Deepest container nesting packed as JSON (deeper values are stored as they are).
MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # what every JSON backend gives back


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """True when JSON decoding `value`'s encoding gives back an equal value of the same types
    (a str holding a lone surrogate passes here: the encoder refuses it, see `_encoded`)."""
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


def pack(values: Sequence[Any], stride: int) -> list[Any]:
    """The entries storing `values` (items of `stride` consecutive values), in order."""
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


def json_text(values: Sequence[Any]) -> str | None:
    """The JSON array of `values` (checked by `is_plain_json`), or None when the encoder
    refuses one: a str holding a lone surrogate."""
    try:
        return _json.dumps(values if type(values) is list else list(values)).decode()
    except (TypeError, ValueError):
        return None


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
    """The flat values a packed chunk's entries store, in order."""
    values: list[Any] = []
    i, count = 0, len(entries)
    while i < count:
        entry = entries[i]
        if type(entry) is str:
            values.extend(_json.loads(entry))
            i += 1
        else:
            end = i + 1 + int(entry) * stride
            values.extend(entries[i + 1:end])
            i = end
    return values

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

The codec is a kernel pair (`statek._speedups`): `_storage_py` is its specification and
`_storage_c` its compiled twin, which a single push gains most from (the checks and calls
around the JSON backend cost several times the encoding of one pair).
"""

from __future__ import annotations

from statek._speedups import is_plain_json, json_text, pack, unpack
from statek._speedups._storage_py import MAX_DEPTH

__all__ = ["MAX_DEPTH", "is_plain_json", "json_text", "pack", "unpack"]

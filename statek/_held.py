"""Values found by a memo object's identity instead of its uuid.

Reading `db0.uuid(obj)` costs ~1 µs and a string; dbzero hands out one Python object per
stored object while that object is referenced, so holding the object keeps `id(obj)` unique
and lets `id` be the key. Only a few long-lived objects (JobDefs) are worth holding: the
table stops taking new ones at `limit`, and callers fall back to the uuid path.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")

#: JobDefs held per table: far more than a worker's definitions in use at once
JOBDEFS_HELD = 256


class HeldByObject(Generic[V]):
    __slots__ = ("_items", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[int, tuple[object, V]] = {}

    def get(self, obj: object) -> V | None:
        found = self._items.get(id(obj))
        return None if found is None else found[1]

    def put(self, obj: object, value: V) -> None:
        """Remember `value` for `obj` (holding `obj`), unless `limit` other objects are held."""
        items, key = self._items, id(obj)
        if key in items or len(items) < self.limit:
            items[key] = (obj, value)

    def forget(self, obj: object) -> None:
        self._items.pop(id(obj), None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

"""A persisted FIFO that never pops from a dbzero list.

`List.pop()` leaks in dbzero 0.7.0 (docs/storage.md#s7-list-pop-leaks) and `del L[0]` is
O(n), so items live in fixed-size chunks keyed by number; the head only moves forward, and a
chunk is dropped as a whole once every item in it was consumed. Every item has a sequence
number (its position since the queue was created), which consumers use to de-duplicate across
prefixes.

Containers are assigned as plain Python values, which dbzero converts into the object's own
prefix: a `db0.dict()` made in `__init__` of an object placed in another prefix than the
current one (`set_prefix`) lost every item written to it at the next commit (dbzero 0.7.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dbzero as db0

CHUNK_SIZE = 512


@db0.memo(id="statek/Fifo")
class Fifo:
    def __init__(self, prefix: str | None = None) -> None:
        db0.set_prefix(self, prefix)
        self.chunks: Any = {}  # chunk number -> list of items (see the module docstring)
        self.head = 0  # sequence number of the oldest unconsumed item
        self.tail = 0  # sequence number the next pushed item gets

    def __len__(self) -> int:
        return int(self.tail - self.head)

    def push(self, item: Any) -> int:
        """Append one item; returns its sequence number."""
        return self.push_many((item,))

    def push_many(self, items: Sequence[Any]) -> int:
        """Append items in order; returns the sequence number of the first."""
        first = seq = int(self.tail)
        chunks = self.chunks
        index = 0
        while index < len(items):
            number, offset = divmod(seq, CHUNK_SIZE)
            room = CHUNK_SIZE - offset
            part = list(items[index : index + room])
            if offset == 0:
                chunks[number] = part
            else:
                chunks[number].extend(part)
            index += len(part)
            seq += len(part)
        self.tail = seq
        return first

    def peek(self, limit: int) -> tuple[int, list[Any]]:
        """Up to `limit` oldest items without consuming them: (first sequence number, items)."""
        head, tail = int(self.head), int(self.tail)
        items: list[Any] = []
        seq = head
        end = min(tail, head + max(limit, 0))
        while seq < end:
            number, offset = divmod(seq, CHUNK_SIZE)
            take = min(end - seq, CHUNK_SIZE - offset)
            items.extend(self.chunks[number][offset : offset + take])
            seq += take
        return head, items

    def advance(self, count: int) -> None:
        """Consume `count` items from the head (call in the transaction that applied them)."""
        head = int(self.head)
        new_head = min(head + max(count, 0), int(self.tail))
        first_chunk, last_chunk = head // CHUNK_SIZE, new_head // CHUNK_SIZE
        for number in range(first_chunk, last_chunk):
            del self.chunks[number]
        self.head = new_head

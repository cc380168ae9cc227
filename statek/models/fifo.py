"""A persisted FIFO that never pops from a dbzero list.

`List.pop()` leaks in dbzero 0.7.0 (docs/storage.md#s7-list-pop-leaks) and `del L[0]` is
O(n), so items live in fixed-size chunks keyed by number; the head only moves forward, and a
chunk is dropped as a whole once every item in it was consumed. Every item has a sequence
number (its position since the queue was created), which consumers use to de-duplicate across
prefixes.

Storage operations are what a push or a drain costs (benchmarks/storage_ops.py counts them):

* the chunk being filled is also kept as `last`, so a push is one list append plus one int
  read and write; looking it up in `chunks` again (a dbzero dict read) is done once per
  chunk, and so is reading `last`, `stride` and `packed_from`: the process keeps them in
  Python between pushes (`TailChunk`, kept by the worker state);
* an item of `stride` > 1 values (a queued message is a (job uuid, message) pair) is stored
  flat, as `stride` consecutive list entries: a stored tuple is one more dbzero object per
  item (about 5 µs to append, against about 1.5 µs for the two plain entries);
* a drain reads each chunk it touches with one slice and writes the head once per call;
* a packed fifo (the queue's messages) stores each pushed run of plain-JSON items as one JSON
  string (`statek.models.fifo_pack`): a value read from dbzero costs ~1.4 µs, a value decoded
  from JSON ~0.13 µs.

Fifos stored before `stride`/`last` existed read as stride 1 and gain `last` when they start
a chunk. Fifos stored before packing existed have no `packed_from`: their chunks stay flat,
and `pack_from_next_chunk` makes the chunks they start from then on packed (the worker calls
it through `StatekPushQueue.upgrade_stored_form` when it opens a queue).

Containers are assigned as plain Python values, which dbzero converts into the object's own
prefix: a `db0.dict()` made in `__init__` of an object placed in another prefix than the
current one (`set_prefix`) lost every item written to it at the next commit (dbzero 0.7.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import worker_state
from statek.models.fifo_pack import pack, unpack

if TYPE_CHECKING:
    from statek._held import HeldByObject

CHUNK_SIZE = 512


class TailChunk:
    """What a push needs of a fifo's tail chunk, kept in Python between pushes: reading a
    reference (`last`) and two constants from dbzero costs more than the append itself.

    It stays true while the tail is in chunk `number`: a chunk is dropped only once the head
    has passed all of it, so never while it is the tail's; one process writes a prefix
    (dbzero's single writer); and a chunk is created at its first item, which forgets the
    kept one (a `db0.atomic()` block that was reverted can make the tail start a chunk
    number again). The tail itself is read on every push: such a block moves it back."""

    __slots__ = ("chunk", "number", "packed", "stride")

    def __init__(self, number: int, chunk: Any, stride: int, packed: bool) -> None:
        self.number = number
        self.chunk = chunk
        self.stride = stride
        self.packed = packed


@db0.memo(id="statek/Fifo")
class Fifo:
    def __init__(self, prefix: str | None = None, stride: int = 1, packed: bool = False) -> None:
        db0.set_prefix(self, prefix)
        if type(stride) is not int or stride < 1:
            raise ValueError(f"stride must be an int >= 1, got {stride!r}")
        self.chunks: Any = {}  # chunk number -> list of items (see the module docstring)
        self.head = 0  # sequence number of the oldest unconsumed item
        self.tail = 0  # sequence number the next pushed item gets
        self.stride = stride  # stored values per item
        self.last: Any = None  # the chunk holding `tail - 1` (None: look it up)
        self.packed_from: int | None = 0 if packed else None  # first packed chunk's number

    def __len__(self) -> int:
        return int(self.tail - self.head)

    def width(self) -> int:
        """Stored values per item (`stride`)."""
        try:
            return int(self.stride)
        except AttributeError:  # stored before strides existed
            return 1

    def packs(self, number: int) -> bool:
        """Whether chunk `number` is stored packed."""
        try:
            first = self.packed_from
        except AttributeError:  # stored before packing existed
            return False
        return first is not None and number >= first

    def packing(self) -> bool:
        """Whether the chunks started from now on are stored packed."""
        return self.packs(1 << 62)

    def pack_from_next_chunk(self) -> None:
        """Store the chunks started from now on packed (a fifo stored before packing)."""
        if not self.packing():
            self.packed_from = -(-int(self.tail) // CHUNK_SIZE)

    def push(self, item: Any) -> int:
        """Append one item (a tuple of `stride` values when stride > 1); returns its
        sequence number. The common case (the tail chunk exists and is kept) is one append
        or extend, one int read and one int write."""
        seq = int(self.tail)
        if seq % CHUNK_SIZE:
            number = seq // CHUNK_SIZE
            tails = worker_state.current().fifo_tails
            tail = tails.get(self)
            if tail is None or tail.number != number:
                tail = self._hold_tail(number, tails)
            if tail is not None:
                stride, chunk = tail.stride, tail.chunk
                if stride > 1 and len(item) != stride:
                    raise ValueError(f"an item of this fifo is {stride} values, got {item!r}")
                if tail.packed:
                    entries = pack(item if stride > 1 else (item,), stride)
                    if len(entries) == 1:
                        chunk.append(entries[0])
                    else:
                        chunk.extend(entries)
                elif stride == 1:
                    chunk.append(item)
                else:
                    chunk.extend(item)
                self.tail = seq + 1
                return seq
        stride = self.width()
        return self._append(item if stride > 1 else (item,), 1, stride)

    def _hold_tail(self, number: int, tails: HeldByObject[TailChunk]) -> TailChunk | None:
        """Read chunk `number` (the tail's) and keep what a push needs of it; None when it
        must be started."""
        try:
            last, stride, first_packed = self.last, int(self.stride), self.packed_from
        except AttributeError:  # stored before `last`, `stride` or packing existed
            last, stride, first_packed = self._tail_chunk(number), self.width(), None
        if last is None:
            return None
        tail = TailChunk(number, last, stride, first_packed is not None and number >= first_packed)
        tails.put(self, tail)
        return tail

    def push_many(self, items: Sequence[Any]) -> int:
        """Append items in order; returns the sequence number of the first."""
        stride = self.width()
        if stride == 1:
            return self._append(items, len(items), 1)
        return self._append([value for item in items for value in item], len(items), stride)

    def push_flat(self, values: Sequence[Any], count: int) -> int:
        """Append `count` items given as `count * stride` consecutive values; returns the
        sequence number of the first."""
        return self._append(values, count, self.width())

    def _append(self, values: Sequence[Any], count: int, stride: int) -> int:
        if len(values) != count * stride:
            raise ValueError(f"{count} items of {stride} values need {count * stride} values, "
                             f"got {len(values)}")
        first = seq = int(self.tail)
        if count == 0:
            return first
        end = first + count
        index = 0
        chunk = None
        while seq < end:
            number, offset = divmod(seq, CHUNK_SIZE)
            take = min(CHUNK_SIZE - offset, end - seq)
            part = values[index:index + take * stride]
            if self.packs(number):
                part = pack(part, stride)
            if offset == 0:
                self.chunks[number] = list(part)
                chunk = None
            else:
                chunk = self._tail_chunk(number) if chunk is None else chunk
                chunk.extend(part)
            index += take * stride
            seq += take
        self.tail = seq
        if chunk is None:  # a chunk was started: remember it for the next pushes
            self.last = self.chunks[(seq - 1) // CHUNK_SIZE]
            # and forget the one kept in Python: if a `db0.atomic()` block was reverted, that
            # may be an earlier chunk of the same number, which is gone
            worker_state.current().fifo_tails.forget(self)
        return first

    def _tail_chunk(self, number: int) -> Any:
        try:
            last = self.last
        except AttributeError:  # stored before `last` existed
            last = None
        return self.chunks[number] if last is None else last

    def peek_flat(self, limit: int) -> tuple[int, list[Any]]:
        """Up to `limit` oldest items, flat (`stride` values each), without consuming them:
        (first sequence number, values)."""
        stride = self.width()
        head, tail = int(self.head), int(self.tail)
        end = min(tail, head + max(limit, 0))
        if end <= head:
            return head, []
        number, offset = divmod(head, CHUNK_SIZE)
        if (end - 1) // CHUNK_SIZE == number:  # the common case: one chunk
            return head, self._read(number, offset, end - head, stride)
        values: list[Any] = []
        seq = head
        while seq < end:
            number, offset = divmod(seq, CHUNK_SIZE)
            take = min(end - seq, CHUNK_SIZE - offset)
            values.extend(self._read(number, offset, take, stride))
            seq += take
        return head, values

    def _read(self, number: int, offset: int, take: int, stride: int) -> list[Any]:
        """The flat values of `take` items of chunk `number` from item `offset` on."""
        chunk = self.chunks[number]
        if self.packs(number):
            entries = chunk[:]
            values = unpack(entries if type(entries) is list else list(entries), stride)
            return values[offset * stride:(offset + take) * stride]
        part = chunk[offset * stride:(offset + take) * stride]
        return part if type(part) is list else list(part)

    def peek(self, limit: int) -> tuple[int, list[Any]]:
        """Up to `limit` oldest items without consuming them: (first sequence number, items;
        tuples when stride > 1)."""
        head, values = self.peek_flat(limit)
        stride = self.width()
        if stride == 1:
            return head, values
        return head, [tuple(values[i:i + stride]) for i in range(0, len(values), stride)]

    def advance(self, count: int) -> None:
        """Consume `count` items from the head (call in the transaction that applied them)."""
        if count <= 0:
            return
        head = int(self.head)
        tail = int(self.tail)
        new_head = min(head + count, tail)
        first_chunk, last_chunk = head // CHUNK_SIZE, new_head // CHUNK_SIZE
        for number in range(first_chunk, last_chunk):
            del self.chunks[number]
        if last_chunk > first_chunk and new_head == tail and new_head % CHUNK_SIZE == 0:
            self.last = None  # the chunk it named was dropped
        self.head = new_head

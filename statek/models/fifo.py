"""A persisted FIFO that never pops from a dbzero list.

`List.pop()` leaks in dbzero 0.7.0 (docs/storage.md#s7-list-pop-leaks) and `del L[0]` is
O(n), so items live in fixed-size chunks keyed by number; the head only moves forward, and a
chunk is dropped as a whole once every item in it was consumed (its entry set to None).
Every item has a sequence number (its position since the queue was created), which consumers
use to de-duplicate across prefixes.

Storage operations are what a push or a drain costs (benchmarks/storage_ops.py counts them):

* the head and the tail live in one stored list, `ends` ([head, tail]): setting a list
  item costs ~2,700 instructions against ~8,800 to write a memo attribute (docs/costs.md
  C35). The list is read afresh by every call and never held in Python past it: in
  dbzero 0.7.0 an item set through a list reference held across a commit is lost
  (docs/storage.md S15);
* the chunk being filled is also kept as `last`, so a push is one list append plus reading
  `ends` and its tail and setting the tail; looking the chunk up in `chunks` again (a
  dbzero dict read) is done once per chunk, and so is reading `last`, `stride` and
  `packed_from`: the process keeps them in Python between pushes (`TailChunk`, kept by the
  worker state);
* an item of `stride` > 1 values (a queued message is a (job uuid, message) pair) is stored
  flat, as `stride` consecutive list entries: a stored tuple is one more dbzero object per
  item (about 5 µs to append, against about 1.5 µs for the two plain entries);
* a drain reads each chunk it touches with one slice and writes the head once per call;
* a packed fifo (the queue's messages) stores each pushed run of plain-JSON items as one JSON
  string (`statek.models.fifo_pack`): a value read from dbzero costs ~1.4 µs, a value decoded
  from JSON ~0.13 µs.

Fifos stored before `stride`/`last` existed read as stride 1 and gain `last` when they start
a chunk. Fifos stored before packing existed have no `packed_from`: their chunks stay flat,
and `pack_from_next_chunk` makes the chunks they start from then on packed. Fifos stored
before `ends` keep their head and tail in the attributes `head` and `tail`, which every
access uses until `store_ends_in_a_list` moves them. The worker does both through
`StatekPushQueue.upgrade_stored_form` when it first opens a queue.

A consumed chunk's entry in `chunks` is set to None, never deleted: in dbzero 0.7.0,
deleting keys from a dict that keeps a few hundred while new keys come in corrupts the
process's heap (a backlog of ~300 chunks drained while messages were pushed aborted the
worker, "malloc(): corrupted top size"; docs/storage.md S17). Setting None frees the chunk's
list; the key stays, a few bytes per CHUNK_SIZE items ever queued.

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


HEAD, TAIL = 0, 1
"""Indexes into `Fifo.ends`."""


class TailChunk:
    """What a push needs of a fifo's tail chunk, kept in Python between pushes: reading a
    reference (`last`) and two constants from dbzero costs more than the append itself.

    `chunk` is the tail's chunk while the tail is in chunk `number` (-1: none kept): a chunk
    is dropped only once the head has passed all of it, so never while it is the tail's; one
    process writes a prefix (dbzero's single writer); and a chunk is created at its first
    item, which forgets the kept value (a `db0.atomic()` block that was reverted can make
    the tail start a chunk number again). The tail itself is read on every push: such a
    block moves it back. Appending through a chunk held across commits is kept by dbzero;
    setting an item through a held list is not (docs/storage.md S15), so `ends` is not
    kept here."""

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
        # [head, tail]: the sequence numbers of the oldest unconsumed item and of the next
        # item pushed (a list, not two attributes: see the module docstring)
        self.ends: Any = [0, 0]
        self.stride = stride  # stored values per item
        self.last: Any = None  # the chunk holding `tail - 1` (None: look it up)
        self.packed_from: int | None = 0 if packed else None  # first packed chunk's number

    def __len__(self) -> int:
        head, tail = self.span()
        return tail - head

    def counters(self) -> Any:
        """The stored [head, tail] list, or None for a fifo stored before it existed."""
        try:
            return self.ends
        except AttributeError:
            return None

    def span(self) -> tuple[int, int]:
        """(head, tail): the oldest unconsumed item's sequence number and the next one's."""
        ends = self.counters()
        if ends is None:  # stored before `ends`
            return int(self.head), int(self.tail)
        head, tail = ends[:]  # one read
        return int(head), int(tail)

    def _set_end(self, index: int, value: int) -> None:
        ends = self.counters()
        if ends is not None:
            ends[index] = value
        elif index == HEAD:
            self.head = value
        else:
            self.tail = value

    def store_ends_in_a_list(self) -> bool:
        """Move the head and tail of a fifo stored before `ends` into it; False when there
        was nothing to do."""
        if self.counters() is not None:
            return False
        self.ends = [int(self.head), int(self.tail)]
        return True

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
            self.packed_from = -(-self.span()[TAIL] // CHUNK_SIZE)

    def push(self, item: Any) -> int:
        """Append one item (a tuple of `stride` values when stride > 1); returns its
        sequence number (`push_item`, with this process's kept tails)."""
        return push_item(self, item, worker_state.current().fifo_tails)

    def _keep(self, tails: HeldByObject[TailChunk]) -> TailChunk:
        """Read what a push needs and keep it (`TailChunk`); its chunk is the tail's, or
        none (-1) when the next push starts one."""
        tail = self.span()[TAIL]
        number = (tail - 1) // CHUNK_SIZE if tail % CHUNK_SIZE else -1
        try:
            last, stride, first_packed = self.last, int(self.stride), self.packed_from
        except AttributeError:  # stored before `last`, `stride` or packing existed
            last, stride, first_packed = None, self.width(), None
            if number >= 0:
                last = self._tail_chunk(number)
        if last is None:
            number = -1
        packed = first_packed is not None and number >= first_packed
        kept = TailChunk(number, last, stride, packed)
        tails.put(self, kept)
        return kept

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
        first = seq = self.span()[TAIL]
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
        self._set_end(TAIL, seq)
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
        head, tail = self.span()
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

    def left_in_head_chunk(self) -> int:
        """Items from the head to the end of the chunk holding it (or to the tail)."""
        head, tail = self.span()
        return min(tail, (head // CHUNK_SIZE + 1) * CHUNK_SIZE) - head

    def set_aside_head_chunk(self) -> tuple[int, int, list[Any]]:
        """Drop the chunk holding the head without decoding it (it cannot be: damaged):
        (the head's sequence number, unconsumed items dropped, the chunk's stored entries
        as found, from its start). When the tail is in that chunk too, both ends move to
        the next chunk's first number, so the next push starts a fresh chunk rather than
        appending after the damage (sequence numbers only ever grow: nothing is re-used)."""
        head, tail = self.span()
        number = head // CHUNK_SIZE
        end = (number + 1) * CHUNK_SIZE
        chunk = self.chunks.get(number)
        entries = [] if chunk is None else list(chunk[:])
        if chunk is not None:
            self.chunks[number] = None  # dropped (never `del`: see the module docstring)
        if tail <= end:
            self._set_end(TAIL, end)
            self.last = None
            worker_state.current().fifo_tails.forget(self)
        self._set_end(HEAD, end)
        return head, min(tail, end) - head, entries

    def advance(self, count: int) -> None:
        """Consume `count` items from the head (call in the transaction that applied them)."""
        if count <= 0:
            return
        head, tail = self.span()
        new_head = min(head + count, tail)
        first_chunk, last_chunk = head // CHUNK_SIZE, new_head // CHUNK_SIZE
        for number in range(first_chunk, last_chunk):
            self.chunks[number] = None  # dropped (never `del`: see the module docstring)
        if last_chunk > first_chunk and new_head == tail and new_head % CHUNK_SIZE == 0:
            self.last = None  # the chunk it named was dropped
        self._set_end(HEAD, new_head)


def push_item(fifo: Fifo, item: Any, tails: HeldByObject[TailChunk]) -> int:
    """`Fifo.push` for callers that hold the worker state's `fifo_tails` already: a module
    function, as a memo object's method costs a dbzero attribute lookup per call (~1,600
    instructions). The common case (what the push needs is kept and the tail chunk exists)
    is one attribute read (`ends`), one list item read, one append or extend, and one list
    item write."""
    kept = tails.get(fifo)
    if kept is None:
        kept = fifo._keep(tails)
    try:
        ends = fifo.ends  # read afresh each push: never hold it past a commit (S15)
    except AttributeError:  # stored before `ends`
        ends = None
    seq = int(fifo.tail) if ends is None else ends[TAIL]
    if seq % CHUNK_SIZE:
        if kept.number != seq // CHUNK_SIZE:  # kept for another chunk (a reverted block)
            kept = fifo._keep(tails)
        if kept.number >= 0:
            stride, chunk = kept.stride, kept.chunk
            if stride > 1 and len(item) != stride:
                raise ValueError(f"an item of this fifo is {stride} values, got {item!r}")
            if kept.packed:
                entries = pack(item if stride > 1 else (item,), stride)
                if len(entries) == 1:
                    chunk.append(entries[0])
                else:
                    chunk.extend(entries)
            elif stride == 1:
                chunk.append(item)
            else:
                chunk.extend(item)
            if ends is None:
                fifo.tail = seq + 1
            else:
                ends[TAIL] = seq + 1
            return seq
    stride = kept.stride
    return int(fifo._append(item if stride > 1 else (item,), 1, stride))

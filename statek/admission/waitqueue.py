"""Calls waiting for capacity: served by priority, then round-robin over fairness keys,
then first come first served, in O(log n) per call (one heap, no per-key scans).

Fairness is a virtual clock per priority: each key's next waiter gets the turn after the
key's previous one, but never earlier than the turn last served, so a key that queued 1,000
calls holds turns 1..1000 while a key arriving later starts at the current turn and
alternates with it instead of waiting behind all of them.

An entry's order is one int, (priority, turn, sequence) packed into bit fields, so a heap
comparison is one int comparison rather than a walk over a tuple (the sequence makes every
order unique: the future beside it is never compared).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any

__all__ = ["PRIORITY_RANGE", "WaitQueue"]

_FIELD = 40  # bits of turn and of sequence: 10**12 calls each
_TWO_FIELDS = 2 * _FIELD
_MASK = (1 << _FIELD) - 1
PRIORITY_RANGE = 1 << 20  # priorities in [-PRIORITY_RANGE, PRIORITY_RANGE)

Entry = tuple[int, Any, float]  # (order, future, tokens)


def _order(priority: int, turn: int, seq: int) -> int:
    """Smaller first: higher priority, then earlier turn, then earlier sequence."""
    return ((PRIORITY_RANGE - priority) << (2 * _FIELD)) | (turn << _FIELD) | seq


def priority_of(order: int) -> int:
    return PRIORITY_RANGE - (order >> (2 * _FIELD))


class WaitQueue:
    """Heap of (order, future, tokens); entries whose future is done (cancelled) are
    dropped when they reach the top."""

    __slots__ = ("_heap", "_last", "_seq", "_served")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._seq = 0
        self._served: dict[int, int] = {}  # priority -> turn last served
        self._last: dict[tuple[int, Hashable], int] = {}  # (priority, key) -> last turn given

    @property
    def entries(self) -> list[Entry]:
        """The heap (read-only for callers): a cheap "does anyone wait" check."""
        return self._heap

    def __len__(self) -> int:
        """Entries held, including cancelled ones not yet dropped."""
        return len(self._heap)

    def next_order(self, priority: int, fairness: Hashable) -> int:
        """The order a new waiter of `fairness` at `priority` gets."""
        if not -PRIORITY_RANGE <= priority < PRIORITY_RANGE:
            raise ValueError(f"priority must be in [{-PRIORITY_RANGE}, {PRIORITY_RANGE}), "
                             f"got {priority}")
        lane = (priority, fairness)
        served = self._served.get(priority, 0)
        last = self._last.get(lane, 0)
        turn = (last if last > served else served) + 1
        self._last[lane] = turn
        self._seq = seq = self._seq + 1
        if len(self._last) > 2 * len(self._heap) + 1024:
            self._prune()
        return ((PRIORITY_RANGE - priority) << _TWO_FIELDS) | (turn << _FIELD) | seq

    def push(self, order: int, future: Any, tokens: float) -> Entry:
        entry = (order, future, tokens)
        heapq.heappush(self._heap, entry)
        return entry

    def peek(self) -> Entry | None:
        """The next live entry (dropping cancelled ones on the way), or None."""
        heap = self._heap
        while heap:
            entry = heap[0]
            if not entry[1].done():
                return entry
            heapq.heappop(heap)
            if not heap:
                self._reset()  # the last waiters were cancelled
        return None

    def pop(self) -> Entry:
        """Remove the entry `peek` returned; its turn becomes its priority's served turn."""
        entry = heapq.heappop(self._heap)
        order = entry[0]
        priority, turn = priority_of(order), (order >> _FIELD) & _MASK
        if turn > self._served.get(priority, 0):
            self._served[priority] = turn
        if not self._heap:
            self._reset()
        return entry

    def _reset(self) -> None:
        """Nothing waits: turns start again from zero (the lanes table stays small)."""
        self._served.clear()
        self._last.clear()

    def _prune(self) -> None:
        """Forget lanes whose last turn is already served: they would start there anyway."""
        served = self._served
        self._last = {lane: turn for lane, turn in self._last.items()
                      if turn > served.get(lane[0], 0)}

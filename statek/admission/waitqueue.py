"""Calls waiting for capacity: served by priority, then round-robin over fairness keys,
then first come first served, in O(log n) per call (one heap, no per-key scans).

Fairness is a virtual clock per priority: each key's next waiter gets the turn after the
key's previous one, but never earlier than the turn last served, so a key that queued 1,000
calls holds turns 1..1000 while a key arriving later starts at the current turn and
alternates with it instead of waiting behind all of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any

__all__ = ["WaitQueue", "Waiter"]


class Waiter:
    """One suspended call: the future it awaits and the tokens it wants."""

    __slots__ = ("future", "key", "priority", "tokens")

    def __init__(self, future: Any, tokens: float, priority: int,
                 key: tuple[int, int]) -> None:
        self.future = future
        self.tokens = tokens
        self.priority = priority
        self.key = key  # (turn, sequence): kept when a refused call queues again


class WaitQueue:
    """Heap of (-priority, turn, sequence, waiter); cancelled waiters are dropped lazily."""

    __slots__ = ("_heap", "_last", "_seq", "_served")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Waiter]] = []
        self._seq = 0
        self._served: dict[int, int] = {}  # priority -> turn last served
        self._last: dict[tuple[int, Hashable], int] = {}  # (priority, key) -> last turn given

    def __len__(self) -> int:
        """Entries held, including cancelled ones not yet dropped."""
        return len(self._heap)

    def next_key(self, priority: int, fairness: Hashable) -> tuple[int, int]:
        """The (turn, sequence) a new waiter of `fairness` at `priority` gets."""
        lane = (priority, fairness)
        served = self._served.get(priority, 0)
        last = self._last.get(lane, 0)
        turn = (last if last > served else served) + 1
        self._last[lane] = turn
        self._seq += 1
        if len(self._last) > 2 * len(self._heap) + 1024:
            self._prune()
        return turn, self._seq

    def push(self, waiter: Waiter) -> None:
        turn, seq = waiter.key
        heapq.heappush(self._heap, (-waiter.priority, turn, seq, waiter))

    def peek(self) -> Waiter | None:
        """The next live waiter (dropping cancelled ones on the way), or None."""
        heap = self._heap
        while heap:
            waiter = heap[0][3]
            if not waiter.future.done():
                return waiter
            heapq.heappop(heap)
        self._reset()
        return None

    def pop(self) -> Waiter:
        """Remove the waiter `peek` returned; its turn becomes the served turn."""
        neg_priority, turn, _, waiter = heapq.heappop(self._heap)
        if turn > self._served.get(-neg_priority, 0):
            self._served[-neg_priority] = turn
        return waiter

    def _reset(self) -> None:
        """Nothing waits: turns start again from zero (the lanes table stays small)."""
        self._served.clear()
        self._last.clear()

    def _prune(self) -> None:
        """Forget lanes whose last turn is already served: they would start there anyway."""
        served = self._served
        self._last = {lane: turn for lane, turn in self._last.items()
                      if turn > served.get(lane[0], 0)}

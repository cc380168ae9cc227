"""Calls waiting for capacity: served by priority, then round-robin over fairness keys,
then first come first served, in O(1) per call.

Each priority level holds one FIFO lane per fairness key (tenant) and a rotation of those
lanes: the head is the first call of the first lane of the highest level; once served, its
lane moves to the back of the rotation. A key that queued 1,000 calls therefore alternates
with a key that queued one after it, instead of holding it back by 1,000. Deques all the
way down: no per-call heap sift, whose cache misses grew with the number waiting.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Hashable
from typing import Any

__all__ = ["PRIORITY_RANGE", "WaitQueue"]

PRIORITY_RANGE = 1 << 20  # accepted priorities: [-PRIORITY_RANGE, PRIORITY_RANGE)

Entry = tuple[Any, float]  # (future, tokens)


class _Level:
    """The lanes of one priority, and the order they take turns in."""

    __slots__ = ("lanes", "rotation")

    def __init__(self) -> None:
        self.lanes: dict[Hashable, deque[Entry]] = {}
        self.rotation: deque[tuple[Hashable, deque[Entry]]] = deque()


class WaitQueue:
    """Levels by priority; cancelled entries (future done) are dropped when they come up."""

    __slots__ = ("_levels", "_priorities", "count")

    def __init__(self) -> None:
        self._levels: dict[int, _Level] = {}
        self._priorities: list[int] = []  # non-empty levels, ascending (the last is served)
        self.count = 0  # entries held, cancelled ones included: 0 means nobody waits

    def __len__(self) -> int:
        return self.count

    def push(self, priority: int, fairness: Hashable, future: Any, tokens: float,
             front: bool = False) -> Entry:
        """Queue a call at the back of its key's lane (`front`: at the front, for a call the
        server refused that was admitted before the others)."""
        if not -PRIORITY_RANGE <= priority < PRIORITY_RANGE:
            raise ValueError(f"priority must be in [{-PRIORITY_RANGE}, {PRIORITY_RANGE}), "
                             f"got {priority}")
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level()
            bisect.insort(self._priorities, priority)
        lane = level.lanes.get(fairness)
        if lane is None:
            lane = level.lanes[fairness] = deque()
            level.rotation.append((fairness, lane))
        entry = (future, tokens)
        if front:
            lane.appendleft(entry)
        else:
            lane.append(entry)
        self.count += 1
        return entry

    def peek(self) -> Entry | None:
        """The next live entry (dropping cancelled entries and empty lanes on the way)."""
        priorities = self._priorities
        while priorities:
            priority = priorities[-1]
            level = self._levels[priority]
            rotation = level.rotation
            while rotation:
                fairness, lane = rotation[0]
                while lane:
                    entry = lane[0]
                    if not entry[0].done():
                        return entry
                    lane.popleft()
                    self.count -= 1
                rotation.popleft()
                del level.lanes[fairness]
            priorities.pop()
            del self._levels[priority]
        return None

    def pop(self) -> Entry:
        """Remove the entry `peek` returned; its lane goes to the back of the rotation."""
        rotation = self._levels[self._priorities[-1]].rotation
        entry = rotation[0][1].popleft()
        self.count -= 1
        if len(rotation) > 1:
            rotation.rotate(-1)
        return entry

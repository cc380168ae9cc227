"""A step's timeout around its model call, with no timer per call.

`asyncio.timeout` arms a timer (on uvloop a libuv handle) and builds a context manager for
every call it bounds: about 7 µs, and objects that live through the call's wait, which the
worker's young garbage collections then walk once per call in flight (docs/costs.md#cost-table,
C28). Calls bounded by the same number of seconds on one loop reach their deadlines in the order
they started, so one queue per (loop, seconds) whose one timer is armed for its oldest pending
deadline does the same work with an append per call. Past its deadline a call's task is
cancelled and the await raises TimeoutError, by asyncio.timeout's rules: a cancellation
requested by anyone else meanwhile stays a cancellation.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["OrderedDeadlines", "bounded"]

T = TypeVar("T")


class Deadlined(Protocol):
    """What an `OrderedDeadlines` queue times: a loop-time deadline and a done flag."""

    deadline: float
    done: bool


D = TypeVar("D", bound=Deadlined)


class OrderedDeadlines(Generic[D]):
    """Items whose deadlines come in the order they are added (one timeout for all of them),
    on one timer armed for the oldest deadline still pending; `expired` says what passing
    one means. A finished item stays queued until the timer reaches it or the queue is
    compacted (when it holds over twice the items in flight), so bookkeeping per item is an
    append and a counter."""

    __slots__ = ("in_flight", "items", "loop", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[D] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.in_flight = 0

    def add(self, item: D) -> None:
        """Time `item` out at its deadline (no earlier than any item added before)."""
        items = self.items
        items.append(item)
        self.in_flight += 1
        if self.timer is None:
            self.timer = self.loop.call_at(item.deadline, self._expire)
        elif len(items) > 2 * self.in_flight + 64:  # finished items: drop them
            self.items = deque(i for i in items if not i.done)

    def finished(self) -> None:
        """An added item is done (its `done` flag set)."""
        self.in_flight -= 1

    def __len__(self) -> int:
        """Items queued, finished ones not yet dropped included (bounded: see `add`)."""
        return len(self.items)

    def expired(self, item: D) -> None:
        raise NotImplementedError

    def _expire(self) -> None:
        self.timer = None
        items, now = self.items, self.loop.time()
        while items:
            item = items[0]
            if not item.done:
                if item.deadline > now:
                    self.timer = self.loop.call_at(item.deadline, self._expire)
                    return
                self.expired(item)
            items.popleft()


class _Watch:
    """One bounded await: its task, deadline, and whether the deadline cancelled it."""

    __slots__ = ("cancelling", "deadline", "done", "fired", "task")

    def __init__(self, task: asyncio.Task[Any] | None, deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling() if task is not None else 0
        self.fired = False
        self.done = False


class _Queue(OrderedDeadlines[_Watch]):
    """The watches of one (loop, seconds)."""

    __slots__ = ("seconds",)

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        super().__init__(loop)
        self.seconds = seconds

    def watch(self, task: asyncio.Task[Any]) -> _Watch:
        watch = _Watch(task, self.loop.time() + self.seconds)
        self.add(watch)
        return watch

    def settle(self, watch: _Watch) -> bool:
        """`watch` is over; True when its deadline cancelled the task and no other
        cancellation is pending (the CancelledError is then the timeout's)."""
        self.in_flight -= 1
        watch.done = True
        task, watch.task = watch.task, None  # a finished task is not kept alive by the queue
        return watch.fired and task is not None and task.uncancel() <= watch.cancelling

    def expired(self, item: _Watch) -> None:
        item.fired = True
        if item.task is not None:
            item.task.cancel()


_queues: dict[tuple[asyncio.AbstractEventLoop, float], _Queue] = {}


def _queue(loop: asyncio.AbstractEventLoop, seconds: float) -> _Queue:
    queue = _queues.get((loop, seconds))
    if queue is None:
        # Loops gone since (tests, `asyncio.run` twice), and queues left with nothing to time
        # (jobs whose step timeouts differ), are dropped: at most one queue per distinct
        # timeout that has a call in flight or a deadline still to pass.
        for key in [key for key, q in _queues.items()
                    if key[0].is_closed() or (q.timer is None and not q.items)]:
            del _queues[key]
        queue = _queues[loop, seconds] = _Queue(loop, seconds)
    return queue


async def bounded(awaitable: Awaitable[T], seconds: float) -> T:
    """`await awaitable`, raising TimeoutError after `seconds` (none when <= 0). Watching a
    call is an append and a counter, so one that finishes without waiting (an offline
    provider) is watched too, rather than started by hand and resumed through a wrapper
    that would live through every wait."""
    if seconds <= 0:
        return await awaitable
    task = asyncio.current_task()
    if task is None:
        async with asyncio.timeout(seconds):  # raises: a timeout needs a task
            return await awaitable
    queue = _queue(task.get_loop(), seconds)
    watch = queue.watch(task)
    try:
        value = await awaitable
    except BaseException as exc:
        if queue.settle(watch) and type(exc) is asyncio.CancelledError:
            raise TimeoutError(f"no result within step_timeout={seconds:g}s (the job param, "
                               "or STATEK_STEP_TIMEOUT)") from exc
        raise
    queue.settle(watch)
    return value

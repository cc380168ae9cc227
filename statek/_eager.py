"""Run a coroutine eagerly: synchronously until it first really waits.

Most steps never wait on anything (a warmup that exits, a reply from an offline provider), so
creating an asyncio Task for each costs more than the step. `start_eagerly` drives the
coroutine by hand and only hands it to a Task when it yields a future; the Task then resumes
it exactly where it stopped. (Python 3.12 has `asyncio.eager_task_factory` for this; statek
supports 3.11.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


class _Resume:
    """Awaitable that hands an already-started coroutine's pending future to the Task
    machinery and keeps driving the coroutine after it, forwarding results and exceptions
    (including cancellation)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(value)
                except StopIteration as done:
                    return done.value


async def _finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Resume(coro, pending)


def resume(coro: Coroutine[Any, Any, Any], pending: Any) -> _Resume:
    """Await this to finish a coroutine that was started by hand and yielded `pending`."""
    return _Resume(coro, pending)


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    """Run `coro` now; None if it completed synchronously, else the Task finishing it.

    An exception raised before the first wait propagates to the caller."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, pending))

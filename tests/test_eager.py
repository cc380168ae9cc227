"""start_eagerly: synchronous completion without a Task, correct hand-over when it waits."""

from __future__ import annotations

import asyncio

import pytest

from statek._eager import start_eagerly


async def test_sync_coroutine_completes_without_task() -> None:
    ran: list[int] = []

    async def quick() -> None:
        ran.append(1)

    assert start_eagerly(quick()) is None
    assert ran == [1]


async def test_waiting_coroutine_continues_in_a_task() -> None:
    order: list[str] = []

    async def slow() -> int:
        order.append("start")
        await asyncio.sleep(0.01)
        order.append("middle")
        await asyncio.sleep(0)
        order.append("end")
        return 7

    task = start_eagerly(slow())
    assert order == ["start"]  # ran synchronously up to the first wait
    assert task is not None
    assert await task == 7
    assert order == ["start", "middle", "end"]


async def test_exceptions_and_cancellation_reach_the_coroutine() -> None:
    seen: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    task = start_eagerly(failing())
    assert task is not None
    with pytest.raises(ValueError, match="boom"):
        await task

    async def cancellable() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    task = start_eagerly(cancellable())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside"]


async def test_exception_before_first_wait_propagates() -> None:
    async def broken() -> None:
        raise KeyError("early")

    with pytest.raises(KeyError):
        start_eagerly(broken())

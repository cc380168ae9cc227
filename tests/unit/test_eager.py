"""start_task: a step is one Task from its first instruction, eager where Python allows."""

from __future__ import annotations

import asyncio

import pytest

from statek._eager import EAGER, start_task


async def test_a_coroutine_that_never_waits() -> None:
    ran: list[object] = []

    async def quick() -> int:
        ran.append(asyncio.current_task())
        return 1

    task = start_task(quick())
    if EAGER:
        assert task is None  # finished on the spot, never scheduled
        assert ran and ran[0] is not None
    else:
        assert task is not None and await task == 1
    assert len(ran) == 1


async def test_scopes_entered_before_the_first_wait_are_left_in_the_same_task() -> None:
    seen: list[object] = []
    loop_task = asyncio.current_task()

    async def scoped() -> str:
        async with asyncio.timeout(30):
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())
        return "done"

    task = start_task(scoped())
    assert task is not None
    if EAGER:
        assert seen == [task]  # ran synchronously up to the first wait, as that task
    assert await task == "done"
    assert seen == [task, task] and loop_task not in seen


async def test_a_timeout_inside_cancels_only_that_task() -> None:
    async def stalls() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    task = start_task(stalls())
    assert task is not None
    with pytest.raises(TimeoutError):
        await task
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_exceptions_and_cancellation_reach_the_coroutine() -> None:
    seen: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    task = start_task(failing())
    assert task is not None
    with pytest.raises(ValueError, match="boom"):
        await task

    async def cancellable() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    task = start_task(cancellable())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside"]


@pytest.mark.skipif(not EAGER, reason="only an eager start raises before returning")
async def test_exception_before_first_wait_propagates() -> None:
    async def broken() -> None:
        raise KeyError("early")

    with pytest.raises(KeyError):
        start_task(broken())

"""statek.providers.deadline.bounded: a step's timeout around its model call, on one timer per
(loop, seconds), with asyncio.timeout's rules."""

from __future__ import annotations

import asyncio

import pytest

from statek.providers import deadline
from statek.providers.deadline import bounded


async def _answer(after: asyncio.Future[str]) -> str:
    return await after


async def _immediate() -> str:
    return "now"


async def test_a_reply_in_time_is_returned_and_one_too_late_is_a_timeout() -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[str] = loop.create_future()
    loop.call_soon(ready.set_result, "ok")
    assert await bounded(_answer(ready), 5.0) == "ok"
    never: asyncio.Future[str] = loop.create_future()
    # the message names the setting: a tool's TimeoutError reached the model as "TimeoutError: "
    with pytest.raises(TimeoutError, match=r"^no result within step_timeout=0.05s \(the job "
                       r"param, or STATEK_STEP_TIMEOUT\)$"):
        await bounded(_answer(never), 0.05)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the timeout's cancel was taken back


async def test_a_coroutine_that_does_not_wait_is_answered_and_zero_means_none() -> None:
    assert await bounded(_immediate(), 5.0) == "now"
    assert await bounded(_immediate(), 0) == "now"
    queue = deadline._queue(asyncio.get_running_loop(), 5.0)
    assert queue.in_flight == 0 and all(w.done for w in queue.items)


async def test_calls_expire_in_order_and_finished_ones_do_not_pile_up() -> None:
    """Many answered calls leave a bounded queue; of two waiting calls, each times out at its
    own deadline: the timer is armed again for the second after the first's."""
    loop = asyncio.get_running_loop()
    for _ in range(500):
        ready: asyncio.Future[str] = loop.create_future()
        loop.call_soon(ready.set_result, "ok")
        assert await bounded(_answer(ready), 0.3) == "ok"
    assert len(deadline._queue(loop, 0.3).items) <= 2 * 1 + 64  # compacted as it goes
    began_first = loop.time()
    first = asyncio.ensure_future(bounded(_answer(loop.create_future()), 0.3))
    await asyncio.sleep(0.1)
    began_second = loop.time()
    second = asyncio.ensure_future(bounded(_answer(loop.create_future()), 0.3))
    with pytest.raises(TimeoutError):
        await first
    assert loop.time() - began_first >= 0.29
    with pytest.raises(TimeoutError):
        await second
    assert loop.time() - began_second >= 0.29  # not cut short by the first's deadline


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[str] = loop.create_future()
    task = asyncio.ensure_future(bounded(_answer(never), 5.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_arriving_with_the_deadline_is_not_swallowed() -> None:
    """Cancelled by someone else while the deadline fires: CancelledError, not TimeoutError
    (asyncio.timeout's rule: only a cancellation of its own becomes a timeout)."""
    loop = asyncio.get_running_loop()
    never: asyncio.Future[str] = loop.create_future()
    task = asyncio.ensure_future(bounded(_answer(never), 0.05))
    await asyncio.sleep(0)
    queue = deadline._queue(loop, 0.05)
    loop.call_at(queue.items[-1].deadline, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_queues_of_other_timeouts_go_once_nothing_is_left_to_time() -> None:
    loop = asyncio.get_running_loop()
    for seconds in (0.05, 0.06, 0.07):
        with pytest.raises(TimeoutError):
            await bounded(_answer(loop.create_future()), seconds)
    never: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, never.set_result, "ok")
    assert await bounded(_answer(never), 0.09) == "ok"
    mine = {key[1] for key in deadline._queues if key[0] is loop}
    assert mine == {0.09}  # the three drained queues were dropped when this one was made

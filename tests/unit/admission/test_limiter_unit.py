"""The limiter alone, on a fake clock: admission order, refills, settling, 429s, learning.

Futures are resolved synchronously by the limiter, so these tests read `future.done()`
instead of running an event loop turn; time only moves when a test advances it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from statek.admission.bucket import TokenBucket
from statek.admission.limiter import Limiter, Limits, Reservation
from statek.admission.waitqueue import WaitQueue
from statek.providers.ratelimit import RateLimitInfo


class FakeClock:
    """`now` and the timers the limiter armed; `advance` fires the due ones in order."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[list[Any]] = []  # [when, callback, cancelled]

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        timer: list[Any] = [when, callback, False]
        self.timers.append(timer)

        class Handle:
            def cancel(self) -> None:
                timer[2] = True
        return Handle()

    def armed(self) -> list[float]:
        return [t[0] for t in self.timers if not t[2]]

    def advance(self, seconds: float) -> None:
        """Move time on; timers due by then (or within the microsecond the limiter adds
        for float slack) fire in order, each at its own time, as a loop would."""
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if not t[2] and t[0] <= end + 2e-6),
                         key=lambda t: t[0])
            if not due:
                self.now = max(self.now, end)
                return
            due[0][2] = True
            self.now = max(self.now, due[0][0])
            due[0][1]()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(loop: asyncio.AbstractEventLoop, clock: FakeClock, **limits: Any) -> Limiter:
    return Limiter("p/m", Limits(**limits), loop=loop, clock=clock, call_at=clock.call_at)


def enqueue(limiter: Limiter, tokens: float = 1, priority: int = 0,
            tenant: str = "", name: Any = None) -> asyncio.Future[Reservation]:
    """A waiting call without a task: what `acquire` does once the fast path fails."""
    future = limiter.enqueue(tokens, priority, tenant)
    future.name = name  # type: ignore[attr-defined]
    return future


def test_bucket_refills_on_demand_up_to_its_capacity() -> None:
    bucket = TokenBucket.full(60, 60.0, now=0.0)
    bucket.take(60)
    assert bucket.wait(30, now=0.0) == pytest.approx(30.0)
    assert bucket.refill(10.0) == pytest.approx(10.0)
    assert bucket.refill(1000.0) == 60  # never above capacity
    bucket.cap(5, now=1000.0)
    assert bucket.level == 5
    assert bucket.need(500) == 60  # a call bigger than the bucket waits for a full one
    with pytest.raises(ValueError, match="limit and window"):
        TokenBucket.full(0, 60.0, now=0.0)


def test_headroom_lowers_the_burst_not_the_rate() -> None:
    bucket = TokenBucket.full(100, 10.0, now=0.0, headroom=0.1)
    assert bucket.capacity == pytest.approx(90)
    assert bucket.rate == pytest.approx(10)


def test_requests_per_window_admit_a_burst_then_one_per_refill(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, requests=3, window=3.0)
    assert [limiter.try_acquire(1) is not None for _ in range(4)] == [True, True, True, False]
    waiting = [enqueue(limiter) for _ in range(5)]
    assert not any(f.done() for f in waiting)
    assert clock.armed() == [pytest.approx(101.0, abs=1e-5)]  # one timer, whatever waits
    clock.advance(1.0)
    assert [f.done() for f in waiting] == [True, False, False, False, False]
    clock.advance(2.0)
    assert [f.done() for f in waiting] == [True, True, True, False, False]
    assert len(clock.armed()) == 1


def test_tokens_are_reserved_then_settled_against_usage(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, tokens=1000, window=60.0)
    first = limiter.try_acquire(600)
    assert first is not None and limiter.try_acquire(600) is None
    limiter.settle(first, used_tokens=100)  # used far less than reserved: 900 left
    second = limiter.try_acquire(600)
    assert second is not None
    limiter.settle(second, used_tokens=1200)  # used more: a debt the refill pays first
    assert limiter.tokens is not None and limiter.tokens.level == pytest.approx(-300)
    waiter = enqueue(limiter, tokens=100)
    clock.advance(23.9)  # 1000 per 60 s: 400 tokens take 24 s
    assert not waiter.done()
    clock.advance(0.2)
    assert waiter.done()


def test_a_failed_call_gives_its_tokens_and_slot_back(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, tokens=1000, concurrency=1)
    held = limiter.try_acquire(800)
    assert held is not None
    waiter = enqueue(limiter, tokens=800)
    assert clock.armed() == []  # blocked by concurrency: no timer, a release wakes it
    limiter.release(held)
    assert waiter.done() and limiter.in_flight == 1


def test_priority_first_then_round_robin_over_tenants_then_fifo(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, requests=1, window=1.0)
    assert limiter.try_acquire(1) is not None
    calls = [enqueue(limiter, tenant="a", name=f"a{i}") for i in range(4)]
    calls += [enqueue(limiter, tenant="b", name=f"b{i}") for i in range(2)]
    calls += [enqueue(limiter, priority=5, tenant="c", name="urgent")]
    served: list[str] = []
    for future in calls:
        future.add_done_callback(lambda f: served.append(f.name))  # type: ignore[attr-defined]
    for _ in range(len(calls)):
        clock.advance(1.0)
        loop.run_until_complete(asyncio.sleep(0))  # run the done callbacks
    assert served == ["urgent", "a0", "b0", "a1", "b1", "a2", "a3"]


def test_cancelled_waiters_are_skipped_and_an_admitted_cancel_releases(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, requests=1, window=1.0)
    assert limiter.try_acquire(1) is not None
    gone, kept = enqueue(limiter), enqueue(limiter)
    gone.cancel()
    clock.advance(1.0)
    assert kept.done() and limiter.in_flight == 2

    async def cancelled_after_admission() -> None:
        task = asyncio.ensure_future(limiter.acquire(1))
        await asyncio.sleep(0)  # the task waits
        clock.advance(1.0)  # admitted: the future has its reservation...
        task.cancel()  # ...but the task is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await task
    loop.run_until_complete(cancelled_after_admission())
    assert limiter.in_flight == 2  # the cancelled call's slot was given back


def test_a_429_pauses_the_key_until_the_reset_it_gave(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, requests=100, tokens=10_000, window=60.0)
    sent = limiter.try_acquire(500)
    in_flight = limiter.try_acquire(500)
    assert sent is not None and in_flight is not None
    limiter.refuse(sent, RateLimitInfo(requests_limit=50, requests_remaining=10,
                                       tokens_limit=5_000, tokens_remaining=2_000,
                                       retry_after=4.0))
    assert limiter.refused == 1
    assert limiter.tokens is not None and limiter.requests is not None
    assert limiter.tokens.capacity == pytest.approx(5_000)  # the server's lower limit won
    assert limiter.tokens.level == pytest.approx(1_500)  # its remaining less the call in flight
    assert limiter.requests.level == pytest.approx(9)
    waiter = enqueue(limiter, tokens=100)
    clock.advance(3.9)
    assert not waiter.done()  # paused, although tokens and requests are there
    clock.advance(0.2)
    assert waiter.done()


def test_a_429_without_headers_pauses_for_a_share_of_the_window(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, requests=100, window=60.0)
    sent = limiter.try_acquire(1)
    assert sent is not None
    limiter.refuse(sent, None)
    assert limiter.snapshot()["paused_for"] == pytest.approx(1.0)


def test_a_429_pause_is_at_most_the_window(loop: asyncio.AbstractEventLoop, clock: FakeClock,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """A Retry-After of 99999 paused every call to the key for 28 hours, with no word in
    the log; now at most the window, and the log says so."""
    limiter = make(loop, clock, requests=100, window=60.0)
    sent = limiter.try_acquire(1)
    assert sent is not None
    with caplog.at_level("INFO", logger="statek.admission"):
        limiter.refuse(sent, RateLimitInfo(retry_after=99_999.0))
    assert limiter.snapshot()["paused_for"] == pytest.approx(60.0)
    assert "asked for a pause of 99999s after a 429; pausing for the rate limit window, 60s" \
        in caplog.text
    waiter = enqueue(limiter, tokens=1)
    clock.advance(60.1)
    assert waiter.done()


def test_limits_are_learned_from_headers_and_never_raised_above_the_settings(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = make(loop, clock, tokens=1_000, window=60.0)
    limiter.learn(RateLimitInfo(requests_limit=30, requests_remaining=30, tokens_limit=90_000,
                                tokens_remaining=400))
    assert limiter.requests is not None and limiter.requests.capacity == 30
    assert limiter.tokens is not None and limiter.tokens.capacity == 1_000  # settings cap it
    assert limiter.tokens.level == 400  # another worker spent the rest
    assert limiter.try_acquire(500) is None


def test_learning_probes_with_one_call_before_the_limits_are_known(
        loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    limiter = Limiter("p/m", Limits(), loop=loop, probe=True, clock=clock,
                      call_at=clock.call_at)
    probe = limiter.try_acquire(100)
    assert probe is not None and limiter.try_acquire(100) is None
    follower = enqueue(limiter, tokens=100)
    limiter.settle(probe, 100, RateLimitInfo(tokens_limit=10_000, tokens_remaining=9_900))
    assert follower.done()
    assert limiter.tokens is not None and limiter.tokens.capacity == 10_000


def test_wait_queue_drops_empty_lanes_and_levels_and_cancelled_calls() -> None:
    queue = WaitQueue()
    loop = asyncio.new_event_loop()
    try:
        keep = queue.push(-1, "keep", loop.create_future(), 1)  # a lower level: stays
        for tenant in range(3000):
            queue.push(0, tenant, loop.create_future(), 1)
            assert queue.peek() is not keep
            queue.pop()
        assert queue.peek() is keep and list(queue._levels) == [-1] and len(queue) == 1
        gone = queue.push(5, "x", loop.create_future(), 1)
        refused = queue.push(5, "x", loop.create_future(), 1, front=True)
        assert queue.peek() is refused  # a refused call goes back to the front of its lane
        refused[0].cancel()
        gone[0].cancel()
        assert queue.peek() is keep and len(queue) == 1
        assert queue.pop() is keep and queue.peek() is None and queue._levels == {}
        with pytest.raises(ValueError, match="priority must be in"):
            queue.push(10**9, "x", loop.create_future(), 1)
    finally:
        loop.close()


def test_bad_limits_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="tokens must be > 0"):
        Limits(tokens=0)
    with pytest.raises(ValueError, match="window"):
        Limits(window=-1)
    with pytest.raises(ValueError, match="headroom"):
        Limits(headroom=1.5)
    assert math.isinf(Limiter("x", Limits(), loop=asyncio.new_event_loop()).concurrency)

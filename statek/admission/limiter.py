"""One account's limits for one model: requests and tokens per window, calls in flight.

A call reserves one request and its estimated tokens before it is sent and settles against
the usage its reply reports. Calls that find no capacity wait on a future in a `WaitQueue`;
whoever frees capacity (a settled call, a learned limit, the one timer set for the earliest
refill the head of the queue needs) admits the waiters that now fit, in queue order. No
waiter polls: a worker with 100k suspended calls spends nothing on them until one can go.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from statek.admission.bucket import EPSILON, TokenBucket
from statek.admission.waitqueue import WaitQueue
from statek.providers.ratelimit import RateLimitInfo

log = logging.getLogger("statek.admission")

__all__ = ["Limiter", "Limits", "Reservation"]

DEFAULT_PAUSE_SHARE = 1 / 60  # a 429 without any hint pauses the key for this share of a window


class _Handle(Protocol):
    def cancel(self) -> None: ...


Clock = Callable[[], float]
CallAt = Callable[[float, Callable[[], None]], _Handle]


@dataclass(frozen=True, slots=True)
class Limits:
    """Configured limits (None: not limited, unless a reply's headers say otherwise).
    `requests` and `tokens` are per `window` seconds (60 for the providers' "per minute")."""

    requests: float | None = None
    tokens: float | None = None
    concurrency: int | None = None
    window: float = 60.0
    headroom: float = 0.0  # share of a limit kept out of bursts (see TokenBucket)

    def __post_init__(self) -> None:
        for name in ("requests", "tokens", "concurrency"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"rate limit {name} must be > 0 (or unset), got {value!r}")
        if not self.window > 0:
            raise ValueError(f"rate limit window must be > 0 seconds, got {self.window!r}")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"rate limit headroom must be in [0, 1), got {self.headroom!r}")


class Reservation:
    """What one admitted call holds until it settles or is released: the tokens it took
    from the bucket (0 when no token limit was known then)."""

    __slots__ = ("taken",)

    def __init__(self, taken: float) -> None:
        self.taken = taken


class Limiter:
    """Admission for one (provider, model, account); one per worker event loop."""

    def __init__(self, name: str, limits: Limits, *, loop: asyncio.AbstractEventLoop,
                 probe: bool = False, clock: Clock | None = None,
                 call_at: CallAt | None = None) -> None:
        self.name = name
        self.limits = limits
        self.loop = loop
        # time.monotonic is the default loop's clock (uvloop's is the same, cut to ms), read
        # without a method call on the loop
        self._clock: Clock = clock or time.monotonic
        self._call_at: CallAt = call_at or loop.call_at
        now = self._clock()
        self.requests = self._bucket(limits.requests, now)
        self.tokens = self._bucket(limits.tokens, now)
        self.concurrency = limits.concurrency or math.inf
        # `probe` (limits unknown, to be learned): one call goes first, and its reply's
        # headers set the limits before the rest follow, instead of a burst the server refuses
        self.probing = probe
        self.in_flight = 0
        self.reserved = 0.0  # tokens taken by the calls in flight
        self.paused_until = 0.0
        self.queue = WaitQueue()
        self._timer: _Handle | None = None
        self._timer_at = math.inf
        self.admitted = 0
        self.refused = 0

    def _bucket(self, limit: float | None, now: float) -> TokenBucket | None:
        if limit is None:
            return None
        return TokenBucket.full(limit, self.limits.window, now, self.limits.headroom)

    # -- admission -----------------------------------------------------------------------------

    def try_acquire(self, tokens: float) -> Reservation | None:
        """Admit at once when nobody waits and the capacity is there; else None."""
        if self.queue.count and self.queue.peek() is not None:
            return None
        if self._blocked_for(tokens, self._clock()) > 0.0:
            return None
        return self._grant(tokens)

    async def acquire(self, tokens: float, priority: int = 0, fairness: Hashable = "",
                      front: bool = False) -> Reservation:
        """Wait (suspended, no CPU) until the call may be sent. `front` re-queues a refused
        call at the front of its lane, ahead of calls that came after it."""
        if not front:
            found = self.try_acquire(tokens)
            if found is not None:
                return found
        future = self.enqueue(tokens, priority, fairness, front)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # admitted, then cancelled
                self.release(future.result())
            raise

    def enqueue(self, tokens: float, priority: int = 0, fairness: Hashable = "",
                front: bool = False) -> asyncio.Future[Reservation]:
        """Queue a call; its future gets the Reservation when the call is admitted."""
        queue = self.queue
        future: asyncio.Future[Reservation] = self.loop.create_future()
        entry = queue.push(priority, fairness, future, tokens, front)
        if queue.count == 1 or queue.peek() is entry:  # else it cannot go first: no check
            self._drain()
        return future

    def _blocked_for(self, tokens: float, now: float) -> float:
        """0 when a call of `tokens` may go now; else seconds until it may (inf: until a
        call in flight ends). The buckets' arithmetic is inlined: this runs per admission."""
        if self.in_flight >= self.concurrency or (self.probing and self.in_flight):
            return math.inf
        wait = self.paused_until - now
        bucket = self.requests
        if bucket is not None:
            deficit = 1.0 - bucket.refill(now)
            if deficit > EPSILON and deficit / bucket.rate > wait:
                wait = deficit / bucket.rate
        bucket = self.tokens
        if bucket is not None:
            need = tokens if tokens < bucket.capacity else bucket.capacity
            deficit = need - bucket.refill(now)
            if deficit > EPSILON and deficit / bucket.rate > wait:
                wait = deficit / bucket.rate
        return wait if wait > 0.0 else 0.0

    def _grant(self, tokens: float) -> Reservation:
        if self.requests is not None:
            self.requests.level -= 1.0
        taken = 0.0
        bucket = self.tokens
        if bucket is not None:
            taken = tokens if tokens < bucket.capacity else bucket.capacity
            bucket.level -= taken
            self.reserved += taken
        self.in_flight += 1
        self.admitted += 1
        return Reservation(taken)

    def _drain(self, now: float | None = None) -> None:
        """Admit waiters from the head while they fit; arm one timer for the head's refill."""
        queue = self.queue
        if now is None:
            now = self._clock()
        while queue.count and self.in_flight < self.concurrency:  # else: a call ending admits
            entry = queue.peek()
            if entry is None:
                return
            future, tokens = entry
            wait = self._blocked_for(tokens, now)
            if wait > 0.0:
                if wait != math.inf:
                    self._wake_at(now + wait)
                return
            queue.pop()
            future.set_result(self._grant(tokens))

    def _wake_at(self, when: float) -> None:
        """One timer per limiter, for the earliest moment the head may fit."""
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._call_at(when + 1e-6, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._drain()

    # -- ending a call -------------------------------------------------------------------------

    def settle(self, reservation: Reservation, used_tokens: int | None,
               info: RateLimitInfo | None = None) -> None:
        """The call was answered: charge what it used instead of what it reserved."""
        now = self._clock()
        self.in_flight -= 1
        taken = reservation.taken
        self.reserved -= taken
        if used_tokens is not None and self.tokens is not None:
            self.tokens.give(taken - used_tokens, now)
        self.probing = False
        if info is not None:
            self._learn(info, now)
        if self.queue.count:
            self._drain(now)

    def release(self, reservation: Reservation) -> None:
        """The call failed: give its tokens back (a later reply's headers correct the level
        if the server charged them anyway) and its slot."""
        self._end(reservation, reservation.taken, self._clock())
        self._drain()

    def _end(self, reservation: Reservation, refund: float | None, now: float) -> None:
        self.in_flight -= 1
        self.reserved -= reservation.taken
        if self.tokens is not None and refund is not None:
            self.tokens.give(refund, now)

    def refuse(self, reservation: Reservation, info: RateLimitInfo | None) -> None:
        """HTTP 429: the server did not count the call, and the limiter's picture was wrong.
        Learn what the server said, believe no more than its remaining count less what the
        calls still in flight will take, and pause the key until the reset it gave, so the
        waiting calls wait once instead of each retrying."""
        now = self._clock()
        self.refused += 1
        self.probing = False
        self._end(reservation, reservation.taken, now)
        if self.requests is not None:
            self.requests.give(1, now)
        pause = None
        if info is not None:
            self._learn(info, now)
            if self.requests is not None and info.requests_remaining is not None:
                self.requests.cap(info.requests_remaining - self.in_flight, now)
            if self.tokens is not None and info.tokens_remaining is not None:
                self.tokens.cap(info.tokens_remaining - self.reserved, now)
            pause = info.pause()
        if pause is None:
            pause = self.limits.window * DEFAULT_PAUSE_SHARE
        elif pause > self.limits.window:
            # one reply must not stall every call to the key for long (a Retry-After of
            # 99999 did, silently); a longer quota refuses again, and the refusals end the
            # call with an error (rate_limit_max_refusals)
            log.warning("%s: the server asked for a pause of %gs after a 429; pausing for "
                        "the rate limit window, %gs", self.name, pause, self.limits.window)
            pause = self.limits.window
        if pause >= 1.0:
            log.info("%s: refused (HTTP 429): calls paused for %.3gs", self.name, pause)
        self.paused_until = max(self.paused_until, now + pause)
        self._drain()

    # -- learning ------------------------------------------------------------------------------

    def learn(self, info: RateLimitInfo) -> None:
        """Take in what a reply's headers said, then admit whoever now fits."""
        self._learn(info, self._clock())
        self._drain()

    def _learn(self, info: RateLimitInfo, now: float) -> None:
        """A limit below the configured one (or none configured) becomes the limit; the
        remaining count caps the level (other workers may share the account)."""
        self.requests = self._learn_dimension(
            self.requests, self.limits.requests, info.requests_limit, info.requests_remaining,
            now)
        self.tokens = self._learn_dimension(
            self.tokens, self.limits.tokens, info.tokens_limit, info.tokens_remaining, now)

    def _learn_dimension(self, bucket: TokenBucket | None, configured: float | None,
                         limit: int | None, remaining: int | None,
                         now: float) -> TokenBucket | None:
        if limit is not None and limit > 0:
            wanted = float(limit) if configured is None else min(configured, float(limit))
            if bucket is None:
                bucket = self._bucket(wanted, now)
            elif abs(bucket.rate * self.limits.window - wanted) > 1e-9 * wanted:
                bucket.resize(wanted, self.limits.window, now, self.limits.headroom)
        if bucket is not None and remaining is not None:
            bucket.cap(float(remaining), now)
        return bucket

    def snapshot(self) -> dict[str, Any]:
        """Counters and levels, for tests, benchmarks and logs."""
        now = self._clock()
        return {
            "name": self.name,
            "admitted": self.admitted,
            "refused": self.refused,
            "in_flight": self.in_flight,
            "queued": len(self.queue),
            "requests_level": None if self.requests is None else self.requests.refill(now),
            "tokens_level": None if self.tokens is None else self.tokens.refill(now),
            "paused_for": max(0.0, self.paused_until - now),
        }

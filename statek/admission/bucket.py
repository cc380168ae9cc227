"""A token bucket refilled on demand: no timer ticks, the level is computed when asked."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EPSILON", "TokenBucket"]

EPSILON = 1e-9  # float slack: a level this close to the need counts as enough


@dataclass(slots=True)
class TokenBucket:
    """A limit of `limit` units per `window` seconds: refilled at `limit / window` per
    second, holding at most `capacity` (the limit less the headroom), starting full.

    The headroom absorbs the delay between admitting a call and the server counting it: a
    server's bucket that was full counts calls admitted before it refilled together with
    later ones, so a burst of a whole limit would be refused in part. The steady rate keeps
    the whole limit. The level may go below zero: a call that used more than it reserved
    leaves a debt the refill pays back before anyone else is admitted.
    """

    capacity: float
    rate: float
    level: float
    stamp: float

    @classmethod
    def full(cls, limit: float, window: float, now: float,
             headroom: float = 0.0) -> TokenBucket:
        if limit <= 0 or window <= 0:
            raise ValueError(f"a bucket needs limit and window > 0, got {limit}, {window}")
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {headroom}")
        capacity = limit * (1 - headroom)
        return cls(capacity, limit / window, capacity, now)

    def refill(self, now: float) -> float:
        """Bring the level up to `now` and return it."""
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.stamp = now
        return self.level

    def need(self, units: float) -> float:
        """What a call of `units` must find in the bucket: at most a full bucket, so a call
        larger than the capacity waits for a full one instead of forever."""
        return units if units < self.capacity else self.capacity

    def wait(self, units: float, now: float) -> float:
        """Seconds until `units` are available (0 when they are now)."""
        deficit = self.need(units) - self.refill(now)
        return deficit / self.rate if deficit > EPSILON else 0.0

    def take(self, units: float) -> None:
        self.level -= units

    def give(self, units: float, now: float) -> None:
        """Return units (a refund; negative: a further charge); never above capacity."""
        level = self.refill(now) + units
        self.level = level if level < self.capacity else self.capacity

    def cap(self, remaining: float, now: float) -> None:
        """The server says only `remaining` are left: never believe in more than that."""
        if self.refill(now) > remaining:
            self.level = remaining

    def resize(self, limit: float, window: float, now: float, headroom: float = 0.0) -> None:
        """A new limit (a learned or changed one), keeping the level within its capacity."""
        if limit <= 0:
            raise ValueError(f"a bucket needs limit > 0, got {limit}")
        self.refill(now)
        self.capacity = limit * (1 - headroom)
        self.rate = limit / window
        if self.level > self.capacity:
            self.level = self.capacity

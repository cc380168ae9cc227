"""When to retry a provider call and how long to wait, kept apart from any HTTP client."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from statek.errors import ConfigurationError, ProviderError
from statek.providers.transports.base import ConnectionFailed, ReplyTimeout

__all__ = ["RetryPolicy", "failure_label", "is_retryable_status", "parse_retry_after"]

_MAX_EXPONENT = 62  # keeps base * 2**n a finite float for any attempt number

#: Told (provider name, status or "timeout" / "connection") each time a provider sends a
#: request again after a failed attempt; set by statek.observability while metrics are on,
#: so the providers need not know about metrics (None: nobody listens).
on_retry: Callable[[str, str], None] | None = None


def failure_label(exc: BaseException) -> str:
    """What the metrics call a failed model request: its HTTP status, "timeout",
    "connection", or else the exception's type. One labelling for a provider's own retries
    and for the step that gives up on its error (a ProviderError raised from a transport
    failure is labelled by that failure)."""
    if isinstance(exc, ProviderError):
        if exc.status is not None:
            return str(exc.status)
        cause = exc.__cause__
        if isinstance(cause, ReplyTimeout | ConnectionFailed):
            exc = cause
    if isinstance(exc, TimeoutError | ReplyTimeout):
        return "timeout"
    if isinstance(exc, ConnectionFailed):
        return "connection"
    return type(exc).__name__


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx are transient by convention; every other status is final."""
    return status in (408, 429) or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        if when.tzinfo is None:  # "-0000": zone unknown, HTTP dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered exponential backoff: retry n waits a random time in [d/2, d], d = base * 2**n.

    `max_retries` counts retries after the first attempt; a server's Retry-After replaces the
    computed wait but is still capped by `backoff_max`, so one server cannot stall a worker.
    """

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ConfigurationError("backoff_base and backoff_max must be >= 0")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Wait before retry number `attempt` (0-based) when the server gave no hint."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt, _MAX_EXPONENT))
        return ceiling * (0.5 + 0.5 * rand())

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Wait before retry `attempt`: the server's Retry-After if any, else the backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        return self.backoff(attempt, rand)

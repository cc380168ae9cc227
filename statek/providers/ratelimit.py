"""Rate-limit facts a provider's reply carries, parsed once so admission control can learn them.

OpenAI sends `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset as a duration:
"1s", "6m0s", "20ms"); Anthropic sends `anthropic-ratelimit-{requests,tokens}-{limit,remaining,
reset}` (reset as an RFC 3339 time) and, instead of or beside the tokens trio, separate
`input-tokens-*` / `output-tokens-*` ones, summed here into one input+output figure.
`Retry-After` (seconds or an HTTP date) comes with a 429.

A caller that queues calls itself (statek.admission) sets `DEFER_RATE_LIMITS` for the duration
of a call: the provider then reports a 429 at once as `RateLimitedError` instead of sleeping
and re-sending it, so one queue waits instead of every job retrying on its own.
"""

from __future__ import annotations

import contextvars
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from statek.errors import ProviderError
from statek.providers.retry import parse_retry_after

__all__ = [
    "DEFER_RATE_LIMITS",
    "RATE_HEADER_PREFIXES",
    "RateLimitInfo",
    "RateLimitedError",
    "parse_duration",
    "parse_rate_limits",
    "rate_limit_headers",
]

#: True while the caller handles 429s (see the module docstring); False by default.
DEFER_RATE_LIMITS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "statek_defer_rate_limits", default=False
)
RATE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one reply said about its account's limits; None where it said nothing.

    Resets are seconds from when the reply was parsed until the dimension is full again.
    """

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None
    retry_after: float | None = None

    def pause(self) -> float | None:
        """How long a refused key should wait: Retry-After, else the reset of an exhausted
        dimension (remaining 0), else None (the caller picks a default)."""
        if self.retry_after is not None:
            return self.retry_after
        waits = [
            reset
            for remaining, reset in (
                (self.requests_remaining, self.requests_reset),
                (self.tokens_remaining, self.tokens_reset),
            )
            if remaining == 0 and reset is not None
        ]
        return max(waits) if waits else None


class RateLimitedError(ProviderError):
    """HTTP 429: the account's limits refused the call; `rate_limits` says what the server
    told (None when it sent no rate-limit headers)."""

    def __init__(self, message: str, *, rate_limits: RateLimitInfo | None = None) -> None:
        super().__init__(message, status=429, retryable=True)
        self.rate_limits = rate_limits


def rate_limit_headers(items: Iterable[tuple[str, str]],
                       retry_after: str | None = None) -> dict[str, str] | None:
    """The rate-limit headers among `items` (lower-cased names), plus Retry-After when
    given; None when there are none, so replies from servers without them cost no dict."""
    found: dict[str, str] | None = None
    for name, value in items:
        lowered = name.lower()
        if lowered.startswith(RATE_HEADER_PREFIXES):
            if found is None:
                found = {}
            found[lowered] = value
    if retry_after is not None:
        if found is None:
            found = {}
        found["retry-after"] = retry_after
    return found


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style duration ("1s", "6m0s", "20ms", "1h2m3.5s") or a plain
    number of seconds; None when it is neither."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _reset(text: str | None, now: float) -> float | None:
    """A reset as seconds from `now`: a duration, or an RFC 3339 time (Anthropic)."""
    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return seconds
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _trio(headers: Mapping[str, str], prefix: str, suffix: str,
          now: float) -> tuple[int | None, int | None, float | None]:
    """(limit, remaining, reset) of one dimension under one naming scheme."""
    if prefix == "x-ratelimit-":  # OpenAI: x-ratelimit-limit-requests
        names = [f"{prefix}{part}-{suffix}" for part in ("limit", "remaining", "reset")]
    else:  # Anthropic: anthropic-ratelimit-requests-limit
        names = [f"{prefix}{suffix}-{part}" for part in ("limit", "remaining", "reset")]
    return _count(headers.get(names[0])), _count(headers.get(names[1])), _reset(
        headers.get(names[2]), now)


def _sum(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _anthropic_tokens(headers: Mapping[str, str],
                      now: float) -> tuple[int | None, int | None, float | None]:
    """Anthropic's tokens trio, or the sum of its input and output trios when only those
    came (one input+output budget is what statek meters)."""
    trio = _trio(headers, "anthropic-ratelimit-", "tokens", now)
    if trio[0] is not None:
        return trio
    inp = _trio(headers, "anthropic-ratelimit-", "input-tokens", now)
    out = _trio(headers, "anthropic-ratelimit-", "output-tokens", now)
    resets = [r for r in (inp[2], out[2]) if r is not None]
    return _sum(inp[0], out[0]), _sum(inp[1], out[1]), max(resets) if resets else None


def parse_rate_limits(headers: Mapping[str, str] | None,
                      now: float | None = None) -> RateLimitInfo | None:
    """A RateLimitInfo from lower-cased headers (see `rate_limit_headers`); None if empty."""
    if not headers:
        return None
    current = time.time() if now is None else now
    if any(name.startswith("anthropic-ratelimit-") for name in headers):
        requests = _trio(headers, "anthropic-ratelimit-", "requests", current)
        tokens = _anthropic_tokens(headers, current)
    else:
        requests = _trio(headers, "x-ratelimit-", "requests", current)
        tokens = _trio(headers, "x-ratelimit-", "tokens", current)
    return RateLimitInfo(
        *requests, *tokens, retry_after=parse_retry_after(headers.get("retry-after"), now=current)
    )

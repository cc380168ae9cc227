"""Harness limits: when a job has used up its turns, exceptions or tokens it is ended, with
the reason recorded. Job params of the same names override the settings per job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIMIT_NAMES = ("max_turns", "max_exceptions", "max_consecutive_exceptions", "max_tokens")
MAX_PROVIDER_FAILURES = 3


@dataclass(frozen=True, slots=True)
class Limits:
    max_turns: int
    max_exceptions: int
    max_consecutive_exceptions: int
    max_tokens: int
    step_timeout: float

    @classmethod
    def of(cls, settings: Any, params: Any) -> Limits:
        def pick(name: str) -> Any:
            value = params.get(name) if params is not None else None
            return getattr(settings, name) if value is None else value

        return cls(int(pick("max_turns")), int(pick("max_exceptions")),
                   int(pick("max_consecutive_exceptions")), int(pick("max_tokens")),
                   float(pick("step_timeout")))


def breach_after_code(job: Any, limits: Limits) -> str | None:
    """Reason to stop after running code, or None."""
    if limits.max_exceptions and job.exceptions >= limits.max_exceptions:
        return (f"harness: {job.exceptions} exceptions reached "
                f"max_exceptions={limits.max_exceptions}")
    if (limits.max_consecutive_exceptions
            and job.consecutive_exceptions >= limits.max_consecutive_exceptions):
        return (f"harness: {job.consecutive_exceptions} consecutive exceptions reached "
                f"max_consecutive_exceptions={limits.max_consecutive_exceptions}")
    return None


def breach_before_request(turns: int, tokens: int, limits: Limits) -> str | None:
    """Reason not to ask the model again after `turns` turns that used `tokens`, or None."""
    if limits.max_turns and turns >= limits.max_turns:
        return f"harness: {turns} turns reached max_turns={limits.max_turns}"
    return breach_of_tokens(tokens, limits)


def breach_of_tokens(used: int, limits: Limits) -> str | None:
    if limits.max_tokens and used >= limits.max_tokens:
        return f"harness: {used} tokens reached max_tokens={limits.max_tokens}"
    return None

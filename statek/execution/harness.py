"""Harness limits: when a job has used up its turns, exceptions, tokens or its step's budget of
synchronous code time it is ended, with the reason recorded. Job params of the same names
override the settings per job."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statek.sandbox import make_uncatchable

if TYPE_CHECKING:
    from statek.models.job import Job

LIMIT_NAMES = ("max_turns", "max_exceptions", "max_consecutive_exceptions", "max_tokens")
MAX_PROVIDER_FAILURES = 3


@dataclass(frozen=True, slots=True)
class Limits:
    max_turns: int
    max_exceptions: int
    max_consecutive_exceptions: int
    max_tokens: int
    step_timeout: float
    code_budget: float = 0.0  # seconds of synchronous job code per step (0: unlimited)

    @classmethod
    def of(cls, settings: Any, params: Any) -> Limits:
        def pick(name: str) -> Any:
            value = params.get(name) if params is not None else None
            return getattr(settings, name) if value is None else value

        return cls(int(pick("max_turns")), int(pick("max_exceptions")),
                   int(pick("max_consecutive_exceptions")), int(pick("max_tokens")),
                   float(pick("step_timeout")), float(pick("step_code_budget")))


def breach_after_code(job: Job, limits: Limits) -> str | None:
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


# ---------------------------------------------------------------------- code budgets
class StepBudgetExceeded(BaseException):
    """Raised into job code (by the watchdog's signal) once its step used up its budget
    for synchronous code. A BaseException, so `except Exception:` in job code passes it on."""


make_uncatchable(StepBudgetExceeded)  # no `except` clause in job code keeps it


@dataclass(slots=True)
class CodeBudget:
    """What one step has left of `step_code_budget` (seconds; 0: unlimited)."""

    limit: float
    left: float


class CodeGuard:
    """Where this process's job code is, for the watchdogs (`statek.runtime.watchdog`).

    The interpreter sets these plain attributes as it enters and leaves job code (a few
    attribute writes per statement, no system call); the watchdog thread reads them and,
    past `deadline`, signals the main thread, whose handler raises `StepBudgetExceeded` only
    while `active` (inside job code), so the exception never lands in statek's own code.
    `beat` (set by the worker loop) writes the durable heartbeat the out-of-process watchdog
    and the quarantine read: which job is running code, since when."""

    __slots__ = ("active", "beat", "deadline", "fire_seq", "running", "seq", "tripped",
                 "unbeat")

    def __init__(self) -> None:
        self.seq = 0  # one per run of job code (a run_block call)
        self.running = False  # inside run_block (job code or its write-back)
        self.active = False  # inside job code itself (exec/eval of a statement)
        self.deadline = float("inf")  # time.monotonic() past which this run is over budget
        self.fire_seq = -1  # the run the watchdog found over budget
        self.tripped = False  # this run was found over budget
        self.beat: Callable[[str], None] | None = None
        self.unbeat: Callable[[], None] | None = None


GUARD = CodeGuard()
#: The running step's budget (each step is its own Task, hence its own context).
step_budget: ContextVar[CodeBudget | None] = ContextVar("statek_step_budget", default=None)


def budget_error(budget: CodeBudget, what: str = "job code") -> str:
    return (f"budget: {what} ran over its step_code_budget of {budget.limit:g} s of "
            "synchronous time per step (STATEK_STEP_CODE_BUDGET); the job is ended")

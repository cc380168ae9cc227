"""Futures: what a suspended job waits for, and what wakes it.

A future is persisted so a job can wait across restarts. Each one names what can make it ready
(`wake_keys`): a job finishing, a deadline, a message for its owner, or, for an arbitrary
condition, a polling interval. The scheduler indexes waiters by those keys; nothing scans.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import dbzero as db0

from statek.errors import StatekError
from statek.models.status import DONE

if TYPE_CHECKING:
    from statek.models.job import Job

#: What a future waits for (stored as this text: dbzero cannot store an enum.Enum member).
FutureKind = Literal["job", "timer", "message", "all", "any", "condition"]
JOB: Final = "job"
TIMER: Final = "timer"
MESSAGE: Final = "message"
ALL: Final = "all"
ANY: Final = "any"
CONDITION: Final = "condition"

#: What can make a waiting future ready: a job finishing, a message for its owner (both
#: indexed by the scheduler under a `wake_key`), a deadline, or a polling interval.
WakeKind = Literal["job", "message", "time", "poll"]
#: The wake kinds the scheduler indexes by uuid (the others are timers).
IndexedWake = Literal["job", "message"]


def wake_key(kind: IndexedWake, uuid: str) -> str:
    """The scheduler's key for waiters on `kind` of the job or agent `uuid`: "job:<uuid>"
    (that job finishing) or "message:<uuid>" (a message for it). Built here only."""
    return f"{kind}:{uuid}"


def wake_key_kind(key: str) -> str:
    """The kind part of a `wake_key`."""
    return key.partition(":")[0]


class ControlSignal(BaseException):
    """Base of the signals the runtime raises through job code (suspend, exit, await a tool).

    A BaseException, so job code's `except Exception:` does not catch one. The first one
    raised since the runner last cleared `pending` is remembered, so a signal swallowed by a
    bare `except:` still takes effect when the statement ends.
    """

    pending: ClassVar[ControlSignal | None] = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if ControlSignal.pending is None:
            ControlSignal.pending = self


class SuspendJob(ControlSignal):
    """Raised by `Future.value` when the value is not there yet: the job suspends on it."""

    def __init__(self, future: Future) -> None:
        super().__init__("job suspended")
        self.future = future


@db0.memo(id="statek/Future")
class Future:
    """Persisted awaitable; `.value` returns the result or suspends the job that reads it."""

    def __init__(
        self,
        kind: FutureKind,
        owner: Job,
        *,
        target: Job | None = None,
        deadline: float | None = None,
        parts: Sequence[Future] = (),
        condition: Callable[..., bool] | None = None,
        args: Sequence[Any] = (),
        poll_interval: float = 1.0,
    ) -> None:
        self.kind: FutureKind = kind
        self.owner = owner
        self.target: Any = target
        self.deadline: Any = deadline
        self.parts: Any = list(parts) if parts else None
        self.condition: Any = condition
        self.args = list(args) if args else None
        self.poll_interval = poll_interval
        self.resolved = False
        self.result = None
        self.winner = -1

    # ------------------------------------------------------------- readiness
    def is_ready(self) -> bool:
        """Whether `.value` would return now (resolving the future if so)."""
        if self.resolved:
            return True
        kind = self.kind
        if kind == JOB:
            if self.target.state != DONE:
                return False
            self._resolve(self.target.exit_status)
        elif kind == TIMER:
            if time.time() < self.deadline:
                return False
            self._resolve(self.deadline)
        elif kind == MESSAGE:
            if self.owner.unread_messages <= 0:
                return False
            self._resolve(self.owner.take_message())
        elif kind == ALL:
            if not all(part.is_ready() for part in self.parts):
                return False
            self._resolve([part.result for part in self.parts])
        elif kind == ANY:
            for index, part in enumerate(self.parts):
                if part.is_ready():
                    self.winner = index
                    self._resolve(part.result)
                    break
            else:
                return False
        elif kind == CONDITION:
            if not self.condition(*(self.args or ())):
                return False
            self._resolve(True)
        else:
            raise StatekError(f"unknown future kind {kind!r}")
        return True

    def _resolve(self, result: Any) -> None:
        self.result = result
        self.resolved = True

    @property
    def done(self) -> bool:
        return self.is_ready()

    @property
    def value(self) -> Any:
        if self.is_ready():
            return self.result
        raise SuspendJob(self)

    def waits_on_message(self) -> bool:
        return any(kind == MESSAGE for kind, _ in self.wake_keys())

    def wake_keys(self) -> Iterator[tuple[WakeKind, Any]]:
        """(kind, what) pairs that can make this future ready: ('job', uuid), ('message',
        owner uuid), ('time', deadline) or ('poll', interval)."""
        kind = self.kind
        if kind == JOB:
            yield "job", db0.uuid(self.target)
        elif kind == TIMER:
            yield "time", self.deadline
        elif kind == MESSAGE:
            yield "message", db0.uuid(self.owner)
        elif kind in (ALL, ANY):
            for part in self.parts:
                if not part.resolved:
                    yield from part.wake_keys()
        else:
            yield "poll", self.poll_interval

    def __repr__(self) -> str:
        """What `.value` would give now, read without resolving anything (a repr has no side
        effects: resolving takes a message or calls a condition). A finished child's future
        showed "pending" until job code read its value."""
        ready, value = self._peek()
        return f"<Future {self.kind} {'= ' + repr(value) if ready else 'pending'}>"

    def _peek(self) -> tuple[bool, Any]:
        """(ready, value) as `.value` would find them, without writing: a message or a
        condition would have to be taken or called to know, so those read as not ready."""
        if self.resolved:
            return True, self.result
        kind = self.kind
        if kind == JOB:
            target = self.target
            return (True, target.exit_status) if target.state == DONE else (False, None)
        if kind == TIMER:
            return (True, self.deadline) if time.time() >= self.deadline else (False, None)
        if kind == ALL:
            values = []
            for part in self.parts:
                ready, value = part._peek()
                if not ready:
                    return False, None
                values.append(value)
            return True, values
        if kind == ANY:
            for part in self.parts:
                ready, value = part._peek()
                if ready:
                    return True, value
        return False, None

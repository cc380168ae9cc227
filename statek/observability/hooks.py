"""The worker's observation points. Callers test `hooks.ON` (one attribute read) first, so a
worker with metrics, traces and job log context all off pays nothing else.

`ON` follows the settings when a loop starts (`loop_started`): `metrics_enabled`, or tracing
enabled (`trace_enabled`, or an OTLP endpoint in the environment with statek[otel]).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from statek.observability import tracing
from statek.observability.logs import AGENT, current_step
from statek.observability.recorder import RECORDER
from statek.providers import retry

ON = False
#: Seconds between two event-loop lag probes.
LAG_PROBE_S = 0.5

_step_numbers = itertools.count(1)
_set_step, _reset_step, _clock = current_step.set, current_step.reset, time.perf_counter
_agent_names: dict[str, str] = {}


def configure(settings: Any) -> None:
    """Set `ON` (and tracing) from the settings; called by each loop as it starts."""
    global ON
    tracing.configure(settings.trace_enabled)
    ON = bool(settings.metrics_enabled) or tracing.ENABLED
    retry.on_retry = _provider_retried if ON else None


# ----------------------------------------------------------------------------- steps

async def observed_step(execute: Callable[[Any, str | None, str], Awaitable[Any]], job: Any,
                        job_uuid: str, provider: str | None) -> Any:
    """Run `execute(job, provider, job_uuid)` (execute_step) with the job's log context, a
    step span and the step's counters (written out inline: this runs once per step)."""
    number = next(_step_numbers)
    ctx: list[Any] = [job_uuid, number, None]  # logs.StepContext
    token = _set_step(ctx)
    span = tracing.start_step(job, job_uuid, number) if tracing.ENABLED else None
    began = _clock()
    outcome = "cancelled"
    try:
        result = await execute(job, provider, job_uuid)
        outcome = _outcome(result)
        return result
    finally:
        elapsed = _clock() - began
        _reset_step(token)
        agent: str = ctx[AGENT] or "unknown"
        RECORDER.steps_finished[agent, outcome] += 1
        hist = RECORDER.step_duration[agent]
        hist.counts[bisect_left(hist.bounds, elapsed)] += 1
        hist.sum += elapsed
        if span is not None:
            tracing.end_step(span, agent, outcome)


def _outcome(result: Any) -> str:
    if result.completed:
        return "failed" if result.failed else "completed"
    if result.retry_after > 0:
        return "retry"
    if result.suspended:
        return "suspended" if result.ran else "still_suspended"
    return "continued" if result.ran else "idle"


def step_defined(info: Any) -> None:
    """The step has read its job's definition: the agent is known from here on."""
    ctx = current_step.get()
    name = _agent_names.get(info.uuid)
    if name is None:
        name = _agent_names[info.uuid] = str(info.agent.role)
    RECORDER.steps_started[name] += 1
    if ctx is not None:
        ctx[AGENT] = name
        if tracing.ENABLED:
            tracing.name_step(name)


# ----------------------------------------------------------------------------- model calls

class ObservedProvider:
    """A provider whose `complete` is timed, counted and traced; the rest is the provider's."""

    __slots__ = ("inner", "system")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.system = str(getattr(inner, "name", None) or type(inner).__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, request: Any) -> Any:
        system, model = self.system, str(request.model)
        span = tracing.start_model_call(system, model, request) if tracing.ENABLED else None
        began = time.perf_counter()
        try:
            reply = await self.inner.complete(request)
        except BaseException as exc:
            RECORDER.model_latency[system, model].observe(time.perf_counter() - began)
            _model_failed(system, model, exc)
            if span is not None:
                tracing.end_error(span, exc)
            raise
        RECORDER.model_latency[system, model].observe(time.perf_counter() - began)
        RECORDER.model_calls[system, model, "ok"] += 1
        usage = getattr(reply, "usage", None)
        if usage is not None:
            RECORDER.tokens[system, model, "input"] += usage.input_tokens
            RECORDER.tokens[system, model, "output"] += usage.output_tokens
        if span is not None:
            tracing.end_model_call(span, reply)
        return reply


def _model_failed(system: str, model: str, exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError):
        RECORDER.model_calls[system, model, "cancelled"] += 1
        return
    RECORDER.model_calls[system, model, "error"] += 1
    RECORDER.provider_errors[system, retry.failure_label(exc)] += 1


def step_retries_call(provider: object, exc: BaseException) -> None:
    """The step will ask the model again after a backoff for a call that failed with `exc`
    (not counted when the failure ended the job: nothing is retried then)."""
    system = getattr(provider, "system", None) or getattr(provider, "name", None) or "unknown"
    RECORDER.provider_retries[str(system), retry.failure_label(exc)] += 1


def _provider_retried(system: str, label: str) -> None:
    """A provider's own retry of a failed attempt (`retry.on_retry`)."""
    RECORDER.provider_retries[system, label] += 1


def observe_provider(found: tuple[Any, str]) -> tuple[Any, str]:
    """(provider, model) with the provider wrapped in an `ObservedProvider`."""
    return ObservedProvider(found[0]), found[1]


# ----------------------------------------------------------------------------- tools

def observed_tool(name: str | None) -> contextlib.AbstractContextManager[None]:
    """A tool call's span and counters when observability is on, else nothing."""
    if not ON:
        return contextlib.nullcontext()
    return tool_call(str(name or "tool"))


@contextlib.contextmanager
def tool_call(name: str) -> Iterator[None]:
    """Count (and trace) one tool call; the caller's exception handling is unchanged."""
    span = tracing.start_tool(name) if tracing.ENABLED else None
    try:
        yield
    except BaseException as exc:
        RECORDER.tool_calls[name, "error"] += 1
        if span is not None:
            tracing.end_error(span, exc)
        raise
    RECORDER.tool_calls[name, "ok"] += 1
    if span is not None:
        span.end()


def delegated(child: Any) -> None:
    """A step delegated to `child`: with tracing on, a delegation span whose context the child
    keeps (`traceparent`), so the child's step spans link to it."""
    if tracing.ENABLED:
        tracing.record_delegation(child)


# ----------------------------------------------------------------------------- the loop

def commit_done(seconds: float, group: int) -> None:
    RECORDER.commit_duration.observe(seconds)
    RECORDER.commit_group.observe(group)


def iteration_done(seconds: float) -> None:
    RECORDER.iteration_time.observe(seconds)


class LagProbe:
    """Measures event-loop lag: how late a callback scheduled `LAG_PROBE_S` ahead runs."""

    def __init__(self, interval: float = LAG_PROBE_S) -> None:
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self.expected = self.loop.time() + self.interval
        self.handle = self.loop.call_at(self.expected, self._fire)

    def _fire(self) -> None:
        lag = max(0.0, self.loop.time() - self.expected)
        RECORDER.last_lag = lag
        RECORDER.loop_lag.observe(lag)
        self._arm()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def loop_started(settings: Any) -> LagProbe | None:
    """Configure from `settings`; the lag probe to close when the loop ends (None when off)."""
    configure(settings)
    return LagProbe() if ON else None

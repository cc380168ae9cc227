"""Prometheus metrics (statek[metrics]): a collector that reads, at scrape time, the counters
the worker keeps anyway (`LoopStats`, the scheduler's in-memory queues, `recorder.RECORDER`)
and the push queues' lengths. Nothing is scanned in the store; nothing is built per event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from statek.models.future import wake_key_kind
from statek.observability.recorder import RECORDER, Histogram

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.process_collector import ProcessCollector
except ImportError:  # pragma: no cover - exercised by installs without the extra
    AVAILABLE = False
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
else:
    AVAILABLE = True
    CONTENT_TYPE = CONTENT_TYPE_LATEST

MISSING = "metrics need prometheus-client: pip install 'statek[metrics]'\n"


def _loops() -> list[Any]:
    from statek.runtime.loop import active_loops

    return active_loops()


def _counter(name: str, doc: str, labels: Iterable[str], values: dict[Any, int]) -> Any:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _histogram(name: str, doc: str, labels: Iterable[str],
               values: dict[Any, Histogram]) -> Any:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key, hist in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], hist.cumulative(),
                          hist.sum)
    return family


def _gauge(name: str, doc: str, value: float, labels: Iterable[str] = (),
           values: dict[Any, float] | None = None) -> Any:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if values is None:
        family.add_metric([], value)
    else:
        for key, item in sorted(values.items()):
            family.add_metric(list(key) if isinstance(key, tuple) else [key], item)
    return family


def _wake_kinds(sched: Any) -> dict[str, float]:
    """Suspended jobs by what wakes them: job, message (waiter index), time (timer heap).
    O(distinct wake keys), read from the scheduler's tables."""
    kinds: dict[str, float] = {"job": 0, "message": 0, "time": float(len(sched.timers))}
    waiting = sched.waiters.waiting
    for key, number in sched.wake_keys.items():
        count = waiting(number)
        if count:
            kind = wake_key_kind(key)
            kinds[kind] = kinds.get(kind, 0) + count
    return kinds


class QueueAges:
    """Age of the oldest queued item, as far as scrapes can tell: a queue's head sequence
    number is remembered with the time it was first seen; while it stays the head, the item
    is at least that old (a lower bound with the resolution of the scrape interval)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[int, float]] = {}

    def age(self, key: tuple[str, str], head: int, depth: int, now: float) -> float:
        if not depth:
            self.seen.pop(key, None)
            return 0.0
        found = self.seen.get(key)
        if found is None or found[0] != head:
            self.seen[key] = (head, now)
            return 0.0
        return now - found[1]


_ages = QueueAges()


def _queue_families(loops: list[Any]) -> Iterator[Any]:
    from statek.runtime.queues import queues_of

    prefixes: list[Any] = []
    for loop in loops:
        prefixes.extend(p for p in loop.queue_prefixes if p not in prefixes)
    depth = GaugeMetricFamily("statek_queue_depth", "Items in the worker's push queues",
                              labels=["prefix", "kind"])
    age = GaugeMetricFamily("statek_queue_oldest_age_seconds",
                            "Lower bound on how long the oldest queued item has waited "
                            "(resolution: the scrape interval)", labels=["prefix", "kind"])
    now = time.monotonic()
    for queue in queues_of(prefixes):
        name = str(queue.prefix_name)
        fifos = [("messages", "", queue.messages),
                 *(("events", str(agent), fifo) for agent, fifo in queue.events.items())]
        totals: dict[str, tuple[int, float]] = {}
        for kind, agent, fifo in fifos:
            head, tail = fifo.span()
            oldest = _ages.age((name, f"{kind}:{agent}"), head, tail - head, now)
            count, worst = totals.get(kind, (0, 0.0))
            totals[kind] = (count + tail - head, max(worst, oldest))
        for kind in ("messages", "events"):
            count, worst = totals.get(kind, (0, 0.0))
            depth.add_metric([name, kind], count)
            age.add_metric([name, kind], worst)
    yield depth
    yield age


def _admission_families() -> Iterator[Any]:
    """Admission control per limiter ("provider/model"): a key paused after a 429 or a
    queue of calls waiting was visible nowhere."""
    from statek.admission.registry import current_limiters

    shots = [limiter.snapshot() for limiter in current_limiters()]
    if not shots:
        return
    for name, key, doc in (
            ("statek_admission_queued", "queued", "Model calls waiting for admission"),
            ("statek_admission_in_flight", "in_flight", "Model calls admitted and unanswered"),
            ("statek_admission_paused_seconds", "paused_for",
             "Seconds the limiter still holds every call after a 429")):
        yield _gauge(name, doc, 0, ["limiter"], {shot["name"]: shot[key] for shot in shots})
    for name, key, doc in (
            ("statek_admission_admitted", "admitted", "Model calls admitted"),
            ("statek_admission_refused", "refused", "Admitted calls the server refused (429)")):
        yield _counter(name, doc, ["limiter"], {shot["name"]: shot[key] for shot in shots})


class StatekCollector:
    """Builds every statek_* family when scraped."""

    def collect(self) -> Iterator[Any]:
        loops = _loops()
        yield from self._loop_families(loops)
        if loops:
            yield from _queue_families(loops)
        yield from _admission_families()
        yield from self._recorded()

    def describe(self) -> list[Any]:
        return []

    def _loop_families(self, loops: list[Any]) -> Iterator[Any]:
        stats = [loop.stats for loop in loops]

        def total(name: str) -> int:
            return sum(int(getattr(s, name)) for s in stats)

        yield _gauge("statek_loop_running", "Worker loops running in this process", len(loops))
        if loops:
            sched = loops[0].sched  # one scheduler per process
            yield _gauge("statek_jobs", "Jobs by scheduler state (this worker's view: "
                         "ready = runnable waiting for a slot, running = step in flight, "
                         "waiting = suspended on a job or message, timer = on a timer or a "
                         "provider backoff)", 0, ["state"],
                         {"ready": len(sched.ready), "running": len(sched.in_flight),
                          "waiting": len(sched.waiters), "timer": len(sched.timers)})
            yield _gauge("statek_ready_queue_depth", "Runnable jobs waiting for a free slot",
                         len(sched.ready))
            yield _gauge("statek_suspended_jobs", "Suspended jobs by what wakes them", 0,
                         ["wake"], _wake_kinds(sched))
            yield _gauge("statek_steps_in_flight", "Step tasks running",
                         sum(len(loop.tasks) for loop in loops))
            now = time.perf_counter()
            yield _gauge("statek_loop_last_iteration_age_seconds",
                         "Seconds since the worker loop last started an iteration",
                         max(now - loop.iterated_at for loop in loops))
        completed = CounterMetricFamily("statek_jobs_finished_total",
                                        "Jobs this worker ran to DONE, by outcome",
                                        labels=["outcome"])
        completed.add_metric(["ok"], total("jobs_completed") - total("steps_failed"))
        completed.add_metric(["error"], total("steps_failed"))
        yield completed
        for name, attr, doc in (
                ("statek_loop_iterations", "iterations", "Worker loop iterations"),
                ("statek_commits", "commits", "Group commits"),
                ("statek_messages_delivered", "messages_delivered", "Queued messages delivered"),
                ("statek_events_started", "events_started", "Jobs started from agent events"),
                ("statek_steps", "steps_done", "Steps run (all outcomes)")):
            yield CounterMetricFamily(name, doc, value=total(attr))
        yield _gauge("statek_max_in_flight", "Most steps in flight at once", max(
            (s.max_in_flight for s in stats), default=0))
        yield _gauge("statek_commit_window_seconds", "The group-commit window: the most "
                     "recent progress a crash can lose", max(
                         (s.commit_window for s in stats), default=0.0))

    def _recorded(self) -> Iterator[Any]:
        rec = RECORDER
        yield _counter("statek_steps_started", "Steps started, by agent", ["agent"],
                       dict(rec.steps_started))
        yield _counter("statek_steps_finished", "Steps finished, by agent and outcome",
                       ["agent", "outcome"], dict(rec.steps_finished))
        yield _counter("statek_steps_failed", "Steps that ended their job with an error",
                       ["agent"], {k[0]: v for k, v in rec.steps_finished.items()
                                   if k[1] == "failed"})
        yield _histogram("statek_step_duration_seconds", "Step duration (model calls "
                         "included)", ["agent"], dict(rec.step_duration))
        yield _counter("statek_model_calls", "Model calls by provider, model and outcome",
                       ["provider", "model", "outcome"], dict(rec.model_calls))
        yield _histogram("statek_model_call_duration_seconds", "Model call latency",
                         ["provider", "model"], dict(rec.model_latency))
        yield _counter("statek_model_tokens", "Tokens by provider, model and direction",
                       ["provider", "model", "direction"], dict(rec.tokens))
        yield _counter("statek_provider_errors", "Failed model calls by status code (or "
                       "timeout / exception type)", ["provider", "status"],
                       dict(rec.provider_errors))
        yield _counter("statek_provider_retries", "Model requests sent again after a failure: "
                       "a provider's own retries and a step asking again after a backoff",
                       ["provider", "status"], dict(rec.provider_retries))
        yield _counter("statek_tool_calls", "Tool calls (from job code and native) by outcome",
                       ["tool", "outcome"], dict(rec.tool_calls))
        yield _histogram("statek_commit_duration_seconds", "Group commit duration", [],
                         {(): rec.commit_duration})
        yield _histogram("statek_commit_group_size", "Writes grouped into one commit", [],
                         {(): rec.commit_group})
        yield _histogram("statek_loop_iteration_seconds", "Worker loop iteration time", [],
                         {(): rec.iteration_time})
        yield _histogram("statek_event_loop_lag_seconds", "How late a timer callback runs",
                         [], {(): rec.loop_lag})
        yield _gauge("statek_event_loop_lag_last_seconds", "The last event-loop lag measured",
                     rec.last_lag)


_registry: list[Any] = []


def registry() -> Any:
    """The registry /metrics renders: statek's collector and the process collector."""
    if not _registry:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(StatekCollector())
        ProcessCollector(registry=reg)
        _registry.append(reg)
    return _registry[0]


def render() -> bytes:
    """The Prometheus text exposition of every metric (needs statek[metrics])."""
    if not AVAILABLE:
        raise RuntimeError(MISSING)
    return generate_latest(registry())


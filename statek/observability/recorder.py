"""Counters and histograms the worker keeps for /metrics, in plain Python data.

The hot path (a step ending, a commit, a model reply) does a dict increment and a bisect;
prometheus-client objects are built only when /metrics is scraped (`metrics.StatekCollector`),
so the worker pays nothing for the library and no lock per event (everything here is touched
from the worker's event-loop thread only).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any

#: Seconds: a step or a model call (inline steps take µs, model calls up to minutes).
DURATION_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0)
#: Seconds: loop iterations, commits, event-loop lag.
FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0)
#: Writes grouped into one commit.
GROUP_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000)


class Histogram:
    """Cumulative-on-read histogram: `observe` is one bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as the Prometheus exposition wants them."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


def _histograms(bounds: tuple[float, ...]) -> defaultdict[Any, Histogram]:
    return defaultdict(lambda: Histogram(bounds))


class Recorder:
    """Everything counted per event since the process started (or `reset()`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps_started: defaultdict[str, int] = defaultdict(int)  # agent
        self.steps_finished: defaultdict[tuple[str, str], int] = defaultdict(int)  # agent, outcome
        self.step_duration = _histograms(DURATION_BUCKETS)  # agent
        self.model_calls: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.model_latency = _histograms(DURATION_BUCKETS)  # provider, model
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)  # + direction
        self.provider_errors: defaultdict[tuple[str, str], int] = defaultdict(int)  # + status
        self.provider_retries: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tool_calls: defaultdict[tuple[str, str], int] = defaultdict(int)  # tool, outcome
        self.commit_duration = Histogram(FAST_BUCKETS)
        self.commit_group = Histogram(GROUP_BUCKETS)
        self.iteration_time = Histogram(FAST_BUCKETS)
        self.loop_lag = Histogram(FAST_BUCKETS)
        self.last_lag = 0.0


RECORDER = Recorder()

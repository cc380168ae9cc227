"""Counters a worker keeps for operators (a later exporter publishes them)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopStats:
    steps_done: int = 0
    steps_failed: int = 0  # steps that ended their job with an error
    jobs_completed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    ready: int = 0
    suspended: int = 0  # jobs SUSPENDED in the store when the loop returned
    messages_delivered: int = 0
    events_started: int = 0
    jobs_started_by_func: int = 0
    commits: int = 0
    commit_window: float = 0.0  # the group-commit window (s) after the last commit
    iterations: int = 0
    queue_depth: int = 0  # queued messages + events, as of the last queue check
    stranded: int = 0  # jobs left suspended when auto_terminate stopped the loop
    # the last 2,048 of each, for the medians; not in repr(): asyncio.Runner formats the
    # SIGINT handler (and so the loop's task and its LoopStats) when it closes, and 4,096
    # floats made that repr ~50 KB and ~15M instructions
    step_latency: deque[float] = field(default_factory=lambda: deque(maxlen=2048), repr=False)
    iteration_time: deque[float] = field(default_factory=lambda: deque(maxlen=2048),
                                         repr=False)

    def step_latency_median(self) -> float:
        return statistics.median(self.step_latency) if self.step_latency else 0.0

    def iteration_time_median(self) -> float:
        return statistics.median(self.iteration_time) if self.iteration_time else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if not isinstance(v, deque)}
        out["step_latency_median_s"] = self.step_latency_median()
        out["iteration_time_median_s"] = self.iteration_time_median()
        return out

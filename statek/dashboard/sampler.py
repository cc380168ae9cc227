"""Rates over the last minutes for the overview's charts.

A worker samples its own `LoopStats` (steps done, steps failed, queue depths); a read-only
process (`statek dashboard`) has no loop, so it samples the store instead: jobs finished and
the failures its event feeder saw. Samples are a fixed ring: a dashboard left open for days
holds the same few kilobytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from markupsafe import Markup

#: Seconds between samples, and samples kept (5 minutes).
INTERVAL_S = 2.0
KEPT = 150


@dataclass(frozen=True)
class Sample:
    at: float
    done: int  # steps done (worker) or jobs finished (read-only)
    failed: int
    in_flight: int
    ready: int
    queued: int  # messages and events waiting in the push queues


class Sampler:
    """Keeps the last `KEPT` samples of `read()` and turns them into per-second rates."""

    def __init__(self, read: Callable[[], Sample], unit: str) -> None:
        self.read = read
        self.unit = unit  # what `done` counts: "steps" or "jobs finished"
        self.samples: deque[Sample] = deque(maxlen=KEPT)

    def take(self) -> Sample:
        sample = self.read()
        self.samples.append(sample)
        return sample

    def rates(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(seconds ago, done per second) and (seconds ago, failures per minute)."""
        now = time.time()
        done: list[tuple[float, float]] = []
        failed: list[tuple[float, float]] = []
        points = list(self.samples)
        for before, after in itertools.pairwise(points):
            span = max(after.at - before.at, 1e-6)
            ago = now - after.at
            done.append((ago, max(after.done - before.done, 0) / span))
            failed.append((ago, max(after.failed - before.failed, 0) * 60 / span))
        return done, failed

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Sample every INTERVAL_S while the block runs."""
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a store being closed under us: try
                self.take()  # again next time
            await asyncio.sleep(INTERVAL_S)


def worker_sampler() -> Sampler:
    """Samples of this process's live loop counters (zeros until a loop runs)."""
    from statek.runtime.loop import last_stats

    def read() -> Sample:
        stats = last_stats()
        if stats is None:
            return Sample(time.time(), 0, 0, 0, 0, 0)
        return Sample(time.time(), stats.steps_done, stats.steps_failed, stats.in_flight,
                      stats.ready, stats.queue_depth)

    return Sampler(read, "steps")


def chart(points: list[tuple[float, float]], title: str, unit: str,
          width: int = 480, height: int = 120) -> Markup:
    """An inline SVG line chart of (seconds ago, value) points, newest on the right. Only
    numbers and the fixed `title`/`unit` strings (escaped) reach the markup."""
    span = float(INTERVAL_S * KEPT)
    top = max([v for _, v in points] + [1.0])
    pad = 28
    inner_w, inner_h = width - pad - 4, height - 24

    def x(ago: float) -> float:
        return pad + inner_w * (1 - min(ago, span) / span)

    def y(value: float) -> float:
        return 6 + inner_h * (1 - value / top)

    line = " ".join(f"{x(a):.1f},{y(v):.1f}" for a, v in sorted(points, key=lambda p: -p[0]))
    last = min(points)[1] if points else 0.0  # the newest: fewest seconds ago
    peak = max((v for _, v in points), default=0.0)
    esc_title, esc_unit = Markup.escape(title), Markup.escape(unit)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc_title}">'
        f'<text x="{pad}" y="12" class="chart-title">{esc_title}: now {last:.1f} {esc_unit}, '
        f'peak {peak:.1f}</text>'
        f'<line x1="{pad}" y1="{6 + inner_h}" x2="{width - 4}" y2="{6 + inner_h}" class="axis"/>'
        f'<line x1="{pad}" y1="6" x2="{pad}" y2="{6 + inner_h}" class="axis"/>'
        f'<text x="2" y="16" class="tick">{top:.0f}</text>'
        f'<text x="2" y="{6 + inner_h}" class="tick">0</text>'
        f'<text x="{pad}" y="{height - 2}" class="tick">-{span / 60:.0f} min</text>'
        f'<text x="{width - 30}" y="{height - 2}" class="tick">now</text>'
        f'<polyline points="{line}" class="series"/></svg>')

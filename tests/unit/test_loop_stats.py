"""LoopStats stays cheap to show: asyncio.Runner formats the SIGINT handler a worker installs
(and through it the loop's task and its LoopStats) when it closes."""

from __future__ import annotations

from statek.runtime.stats import LoopStats


def test_repr_leaves_the_latency_samples_out_and_the_medians_in_as_dict() -> None:
    stats = LoopStats(steps_done=3)
    for n in range(4096):
        stats.step_latency.append(n / 7)
        stats.iteration_time.append(n / 3)
    text = repr(stats)
    assert "steps_done=3" in text and len(text) < 1000
    assert "step_latency" not in text and "iteration_time" not in text
    shown = stats.as_dict()
    assert shown["steps_done"] == 3
    assert shown["step_latency_median_s"] == (3071 / 7 + 3072 / 7) / 2  # the last 2,048

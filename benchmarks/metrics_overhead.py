"""What metrics cost W1: the same workload with observability on and off, alternately.

    python -m benchmarks.metrics_overhead                 # 7 pairs of W1 runs, N=10000
    python -m benchmarks.metrics_overhead --pairs 11 --n 20000

Each measurement is a fresh process (`benchmarks.workloads --one W1`) with
STATEK_METRICS_ENABLED=true or false; pairs alternate in ABBA order so a drift of the shared
machine's load weighs on both sides alike. Prints every figure, the medians (jobs/s) and
on/off: the issue's budget is on/off >= 0.97 (metrics cost < 3%). Tracing stays off
(OTEL_EXPORTER_OTLP_ENDPOINT is removed from the children's environment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics

from benchmarks._harness import run_isolated

BUDGET = 0.97


def hook_cost_us(rounds: int = 5, steps: int = 100_000) -> float:
    """µs the per-step hooks add to one step (observed_step + step_defined around a stub
    step that does nothing), median of `rounds`: a figure the machine's noise moves less."""
    import time
    from types import SimpleNamespace

    from statek.observability import hooks
    from statek.observability.recorder import RECORDER

    result = SimpleNamespace(completed=True, retry_after=0.0, suspended=False, ran=True)
    job = SimpleNamespace(error=None)
    info = SimpleNamespace(uuid="definition", agent=SimpleNamespace(role="bench"))

    async def bare(job: object, provider: object) -> object:
        return result

    async def defined(job: object, provider: object) -> object:
        hooks.step_defined(info)
        return result

    def run(make: object) -> float:
        began = time.perf_counter()
        for _ in range(steps):
            with contextlib.suppress(StopIteration):
                make().send(None)  # type: ignore[operator]
        return (time.perf_counter() - began) / steps * 1e6

    diffs = []
    for _ in range(rounds):
        plain = run(lambda: bare(job, None))
        observed = run(lambda: hooks.observed_step(defined, job, "job", None))
        diffs.append(observed - plain)
    RECORDER.reset()
    return statistics.median(diffs)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(metrics_on: bool, n: int) -> tuple[float, float]:
    """(W1 jobs/s, CPU seconds of the whole child process: start-up and job creation too)."""
    env = {"STATEK_METRICS_ENABLED": "true" if metrics_on else "false",
           "STATEK_TRACE_ENABLED": "false"}
    saved = {k: os.environ.pop(k) for k in ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
             if k in os.environ}
    cpu = _children_cpu()
    try:
        figure = float(run_isolated("benchmarks.workloads", "--one", "W1", "--n", str(n),
                                    env=env)["figure"])
        return figure, _children_cpu() - cpu
    finally:
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="W1 jobs per run")
    parser.add_argument("--pairs", type=int, default=7, help="on/off pairs")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.n < 1:
        parser.error("--pairs and --n must be >= 1")
    figures: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for pair in range(args.pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        for metrics_on in order:
            figure, seconds = measure(metrics_on, args.n)
            figures[metrics_on].append(figure)
            cpu[metrics_on].append(seconds)
            print(f"pair {pair + 1}: metrics {'on ' if metrics_on else 'off'} "
                  f"{figure:10.1f} jobs/s  (process CPU {seconds:.2f}s)", flush=True)
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    cpu_on, cpu_off = statistics.median(cpu[True]), statistics.median(cpu[False])
    result = {"n": args.n, "pairs": args.pairs, "median_on_jobs_s": round(on, 1),
              "median_off_jobs_s": round(off, 1), "ratio_on_off": round(on / off, 4),
              "overhead_pct": round((1 - on / off) * 100, 2),
              "median_cpu_on_s": round(cpu_on, 3), "median_cpu_off_s": round(cpu_off, 3)}
    hooks_us = hook_cost_us()
    result["hooks_us_per_step"] = round(hooks_us, 3)
    result["hooks_pct_of_w1_job"] = round(hooks_us / (1e6 / off) * 100, 2)
    print(f"W1 median with metrics on: {on:.1f} jobs/s, off: {off:.1f} jobs/s, "
          f"on/off = {on / off:.4f} (budget >= {BUDGET})")
    print(f"the hooks add {hooks_us:.2f} µs per step: {result['hooks_pct_of_w1_job']}% of the "
          f"{1e6 / off:.0f} µs a W1 job takes with metrics off")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

"""W10: W2 with job code in the process-isolated executor (settings.isolation="process").

    python -m benchmarks.w10_isolated                 # in-process, 1 and 2 executors, medians of 3
    python -m benchmarks.w10_isolated --one process --executors 2 --n 2000   # one JSON line

W2's jobs (two steps each: the request, then running the reply `exit('ok')`) against a
zero-latency offline provider. Every measurement runs in a fresh process; the executors are
started (and ready) before the timed part. Target (DESIGN): >= 25% of the in-process rate.
Per-step overhead = 1/rate(mode) - 1/rate(in-process); half the steps run job code, so a
code run costs about twice that.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks._harness import print_table, run_isolated

RESULTS = Path(__file__).parent / "results"


def measure(mode: str, executors: int, n: int, concurrency: int) -> dict[str, Any]:
    """One W2 run in this process (the environment already selects the mode)."""
    from benchmarks.workloads import _steps_run, implementation
    from statek.settings import reset_settings_cache

    os.environ.update(_env(mode, executors))
    reset_settings_cache()
    if mode == "process":
        from statek.isolation.pool import pool_for
        from statek.isolation.runner import pool_config

        pool_for(pool_config()).prestart()  # start-up is not part of the figure
    run = _steps_run(n, concurrency, 0.0)
    return {"workload": "W10", "mode": mode, "executors": executors if mode == "process" else 0,
            "figure": run.pop("steps_per_s"), "unit": "steps/s",
            "params": {"n": n, "max_concurrency": concurrency},
            "implementation": implementation(), **run, **_pool_facts(mode)}


def _pool_facts(mode: str) -> dict[str, Any]:
    """How many runs each executor served, and the protection they reported."""
    if mode != "process":
        return {}
    from statek.isolation.pool import current_pool

    pool = current_pool()
    assert pool is not None
    return {"executor_runs": [e.runs for e in pool.executors],
            "protection": sorted(pool.protections), "replaced": pool.replaced}


def _env(mode: str, executors: int) -> dict[str, str]:
    return {"STATEK_ISOLATION": mode, "STATEK_EXECUTOR_PROCESSES": str(max(1, executors))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=["in-process", "process"])
    parser.add_argument("--executors", type=int, default=1)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.executors, args.n, args.concurrency)))
        return 0
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    configs = [("in-process", 0), ("process", 1), ("process", 2)]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {c: [] for c in configs}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every mode alike
        for mode, executors in configs:
            extra = ["--one", mode, "--executors", str(executors), "--n", str(args.n),
                     "--concurrency", str(args.concurrency)]
            runs[(mode, executors)].append(
                run_isolated("benchmarks.w10_isolated", *extra, env=_env(mode, executors)))
    base = statistics.median(r["figure"] for r in runs[("in-process", 0)])
    rows = []
    for (mode, executors), results in runs.items():
        rate = statistics.median(r["figure"] for r in results)
        overhead_us = (1 / rate - 1 / base) * 1e6
        rows.append({"mode": mode, "executors": executors, "median_steps_per_s": rate,
                     "runs": [r["figure"] for r in results],
                     "of_in_process": rate / base,
                     "overhead_us_per_step": overhead_us,
                     "overhead_us_per_code_run": 2 * overhead_us,
                     "meets_25_percent": rate / base >= 0.25})
    print_table(["mode", "executors", "steps/s (median)", "of in-process", "µs/step extra"],
                [[r["mode"], r["executors"] or "-", f"{r['median_steps_per_s']:,.0f}",
                  f"{100 * r['of_in_process']:.0f}%", f"{r['overhead_us_per_step']:.0f}"]
                 for r in rows])
    record = {"workload": "W10", "started": started,
              "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "params": {"n": args.n, "max_concurrency": args.concurrency,
                         "repeats": args.repeats},
              "target": ">= 25% of in-process W2", "rows": rows}
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{started[:10]}-w10-isolated.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

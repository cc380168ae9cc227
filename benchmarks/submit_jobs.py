"""Cost of `submit_new_jobs_batch` per job at 1k, 10k and 100k jobs (issue: foundation).

    python -m benchmarks.submit_jobs            # table, medians of 3 fresh processes per size
    python -m benchmarks.submit_jobs --one N    # one measurement (JSON), used by the above

Target: <= 100 µs per job, and 100k within 1.2x of the per-job cost at 1k.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks._harness import fresh_store, print_table, run_isolated

SIZES = (1_000, 10_000, 100_000)


def measure(n: int, ids: bool) -> float:
    import statek

    with fresh_store():
        agent = statek.Agent("bench")
        api = statek.StatekClientAPI()
        batch = [{"i": i, "task": f"task {i}"} for i in range(n)]
        start = time.perf_counter()
        if ids:
            result: list[object] = list(api.submit_new_job_ids(agent, batch))
        else:
            result = list(api.submit_new_jobs_batch(agent, batch))
        elapsed = time.perf_counter() - start
        del result  # freeing what the caller got back is not part of the call
        return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", type=int)
    parser.add_argument("--ids", action="store_true", help="measure submit_new_job_ids")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    args = parser.parse_args()
    if args.one:
        print(json.dumps({"us_per_job": measure(args.one, args.ids)}))
        return
    rows = []
    medians = {}
    for n in args.sizes:
        extra = ["--ids"] if args.ids else []
        runs = [run_isolated("benchmarks.submit_jobs", "--one", str(n), *extra)["us_per_job"]
                for _ in range(args.repeats)]
        medians[n] = statistics.median(runs)
        rows.append([n, f"{medians[n]:.1f}", " ".join(f"{r:.1f}" for r in runs)])
    print_table(["jobs", "median µs/job", "runs"], rows)
    small, large = min(medians), max(medians)
    ratio = medians[large] / medians[small]
    print(f"ratio {large} / {small}: {ratio:.2f}x (target <= 1.2x); "
          f"worst median {max(medians.values()):.1f} µs/job (target <= 100)")


if __name__ == "__main__":
    main()

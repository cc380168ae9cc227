"""CPU cost of one `run_job_step`, the model excluded (ScriptedProvider with latency 0).

    python -m benchmarks.step_cost              # table: median µs/step of 5 fresh stores
    python -m benchmarks.step_cost --profile c  # also the top of a pyinstrument profile of (c)

Cases, N jobs each, created with `submit_new_job_ids` outside the timed region:
  (a) warmup  -- warmup `exit('done')`: 1 step per job
  (b) 2-step  -- no warmup; the model answers `exit('ok')`: a request, then running the reply
  (c) 5-turn  -- the model always answers `x = x + 1` (+ exit once x == 5): 5 requests and
                 6 steps per job
The timed region is `asyncio.run` of a loop fetching each job and awaiting `run_job_step` until
it completes, plus one commit at the end. Target: <= 100 µs per step (earlier: ~1.4 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks._harness import fresh_store, print_table

PROVIDER = "bench-step"
INCREMENT = "x = x + 1\nif x == 5:\n    exit(x)"


@dataclass(frozen=True)
class Case:
    name: str
    warmup: str | None
    reply: str
    shared: Callable[[int], dict[str, int] | None]
    steps_per_job: int


CASES = {
    "a": Case("(a) warmup exit('done')", "exit('done')", "exit('unused')", lambda i: None, 1),
    "b": Case("(b) 2-step exit('ok')", None, "exit('ok')", lambda i: None, 2),
    "c": Case("(c) 5-turn x = x + 1", None, INCREMENT, lambda i: {"x": 0}, 6),
}


async def _drive(uuids: list[str], steps_per_job: int) -> int:
    import dbzero as db0

    from statek.executors.utils import run_job_step

    steps = 0
    for uuid in uuids:
        job = db0.fetch(uuid)
        for _ in range(steps_per_job):
            steps += 1
            if await run_job_step(job, PROVIDER):
                break
        else:
            raise AssertionError(f"job {uuid} not done after {steps_per_job} steps")
    return steps


def measure(case: Case, n: int, profile: bool = False) -> float:
    """µs per step for `n` jobs of `case` in a fresh store."""
    import dbzero as db0

    import statek
    import statek.executors.utils  # imported here, not inside the timed region
    from statek.providers import ScriptedProvider, add_provider, remove_provider

    with fresh_store("bench_step"):
        agent = statek.Agent("bench", "You are benchmarked.")
        api = statek.StatekClientAPI()
        params = {"warmup_code": case.warmup} if case.warmup else {}
        uuids = api.submit_new_job_ids(agent, [case.shared(i) for i in range(n)], **params)
        add_provider(PROVIDER, ScriptedProvider([case.reply], latency=0))
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
        try:
            start = time.perf_counter()
            steps = asyncio.run(_drive(uuids, case.steps_per_job))
            db0.commit()
            elapsed = time.perf_counter() - start
        finally:
            if profiler is not None:
                profiler.stop()
            remove_provider(PROVIDER)
        if steps != n * case.steps_per_job:
            raise AssertionError(f"{steps} steps for {n} jobs, expected {case.steps_per_job}/job")
        done = len(db0.find(statek.Job, statek.JobStatus.DONE))
        if done != n:
            raise AssertionError(f"{done} of {n} jobs done")
        if profiler is not None:
            text = profiler.output_text(unicode=True, color=False, show_all=False)
            print("\n".join(text.splitlines()[:70]))
        return elapsed / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="jobs per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="abc")
    parser.add_argument("--profile", nargs="?", const="b", choices=list(CASES),
                        help="also profile one case once (default b)")
    args = parser.parse_args()
    rows = []
    for key in args.cases:
        case = CASES[key]
        runs = [measure(case, args.n) for _ in range(args.repeats)]
        median = statistics.median(runs)
        rows.append([case.name, case.steps_per_job, f"{median:.1f}",
                     f"{median * case.steps_per_job:.1f}", " ".join(f"{r:.1f}" for r in runs)])
    print(f"N = {args.n} jobs per run, median of {args.repeats} fresh stores")
    print_table(["case", "steps/job", "median µs/step", "µs/job", "runs µs/step"], rows)
    print("target: <= 100 µs per step")
    if args.profile:
        print(f"\npyinstrument profile of {CASES[args.profile].name}:")
        measure(CASES[args.profile], args.n, profile=True)


if __name__ == "__main__":
    main()

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

    python -m benchmarks.step_cost --outside                 # µs per job around the step
    python -m benchmarks.step_cost --outside --instructions  # the same in instructions

`--outside` measures what a W1 job costs outside the step body (issue 15): (s) submitting it
with `submit_new_job_ids`, and (l) running it through `run_jobs_loop` with `execute_step`
replaced by a stub that only finishes the job (`Job.finish('done')` in one transition, the
one state change a W1 job's step must make): the scheduler, the loop's launch, routing,
counters and group commits, and the status move. Commits are every 500 jobs
(STATEK_COMMIT_MAX_PENDING=500, an interval no run reaches) so that every run, and a run under
callgrind, commits as often per job.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


# ----------------------------------------------------------------------------- outside
#: Group commits every this many jobs in `--outside` runs, whatever the machine's speed.
OUTSIDE_ENV = {"STATEK_COMMIT_MAX_PENDING": "500", "STATEK_COMMIT_INTERVAL": "1000000"}
OUTSIDE_WARM = 50


async def _finish_only(job: Any, provider: str | None = None) -> Any:
    """The stub step of `--outside`: the job's one state change (DONE, exit status)."""
    from statek import store
    from statek.execution.step import StepResult

    with store.transition():
        job.finish("done")
    return StepResult(completed=True)


def outside_child(part: str, n: int) -> dict[str, float]:
    """Run OUTSIDE_WARM jobs in one store (warm-up: imports, first-use caches), then, as W1
    does, in a fresh store: submit `n` jobs with no loop listening, and for part "l" run
    them with the stub step (the loop starts by queueing them: `Scheduler.rebuild`).
    Returns CPU µs per job of the measured part."""
    import gc

    import statek
    import statek.runtime.loop as loop_module
    from statek.executors.utils import run_jobs_loop

    real_step = loop_module.execute_step
    loop_module.execute_step = _finish_only  # type: ignore[assignment]
    try:
        for size in (OUTSIDE_WARM, n):
            with fresh_store("bench_outside"):
                api = statek.StatekClientAPI()
                agent = statek.Agent("bench-outside")
                gc.collect()
                began = time.process_time()
                api.submit_new_job_ids(agent, [{"i": i} for i in range(size)],
                                       warmup_code="exit('done')")
                submitted = time.process_time()
                if part == "l" or size == OUTSIDE_WARM:
                    del agent
                    gc.collect()
                    submitted = time.process_time()
                    stats = asyncio.run(run_jobs_loop(1000, queue_prefixes=["bench_outside"],
                                                      auto_terminate=True))
                    if stats.jobs_completed != size:
                        raise AssertionError(f"{stats.jobs_completed} of {size} jobs completed")
                ended = time.process_time()
    finally:
        loop_module.execute_step = real_step
    return {"submit_us": (submitted - began) / n * 1e6 if part == "s" else 0.0,
            "loop_us": (ended - submitted) / n * 1e6 if part == "l" else 0.0}


def _outside_run(part: str, n: int, callgrind: bool) -> dict[str, Any]:
    import json
    import os
    import re
    import subprocess
    import sys

    command = [sys.executable, "-m", "benchmarks.step_cost", "--outside-child", part, str(n)]
    if callgrind:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, **OUTSIDE_ENV, "PYTHONHASHSEED": "0"})
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if callgrind:
        found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no callgrind total in:\n{done.stderr[-2000:]}")
        out["instructions"] = int(found.group(1))
    return out


def outside(n: int, repeats: int, instructions: bool) -> None:
    """Print the per-job cost outside the step body (see the module docstring)."""
    rows = []
    for part, name in (("s", "(s) submit"), ("l", "(l) loop, stub step")):
        key = "submit_us" if part == "s" else "loop_us"
        runs = [_outside_run(part, n, False)[key] for _ in range(repeats)]
        row = [name, f"{statistics.median(runs):.1f}", " ".join(f"{r:.1f}" for r in runs)]
        if instructions:
            small, large = (_outside_run(part, size, True)["instructions"]
                            for size in (200, 1200))
            if part == "l":  # the loop's child also submitted the jobs it ran
                sub_small, sub_large = (_outside_run("s", size, True)["instructions"]
                                        for size in (200, 1200))
                small, large = small - sub_small, large - sub_large
            row.append(f"{(large - small) / 1000:,.0f}")
        rows.append(row)
    print(f"N = {n} jobs per run, median of {repeats} fresh processes (CPU µs per job)")
    print_table(["part", "median µs/job", "runs", *(["instructions/job"] if instructions
                                                     else [])], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="jobs per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="abc")
    parser.add_argument("--profile", nargs="?", const="b", choices=list(CASES),
                        help="also profile one case once (default b)")
    parser.add_argument("--outside", action="store_true",
                        help="the per-job cost outside the step body instead (see above)")
    parser.add_argument("--instructions", action="store_true",
                        help="with --outside: also instructions per job (callgrind)")
    parser.add_argument("--outside-child", nargs=2, metavar=("PART", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.outside_child:
        import json

        print(json.dumps(outside_child(args.outside_child[0], int(args.outside_child[1]))))
        return
    if args.outside:
        outside(args.n, args.repeats, args.instructions)
        return
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

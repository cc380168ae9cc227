"""Where a W1 job's time goes: W1 run three ways, side by side, in fresh processes.

    python -m benchmarks.w1_budget                 # 3 rounds at N=10k, table + one JSON line
    python -m benchmarks.w1_budget --rounds 5 --n 20000

Each way runs W1 (`benchmarks.workloads.w1`) with the worker loop's step swapped for less:

  move    -- the step only moves the job's status to DONE (the status tag and int): what the
             loop itself costs per job (scheduler, launch, fetch, commit) plus the one move
  finish  -- the step only calls `Job.finish` (the move, `done_at`, the exit status, the
             wake-up signals): what recording a job's end adds
  step    -- the real `execute_step` (definition facts, the namespace, the interpreter,
             `exit()` and finishing)

The differences of the medians' CPU per job apportion a job's cost to the loop, to finishing
and to running the step. Rounds alternate the order of the ways, so drift in the machine's
load spreads over all three.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from benchmarks._harness import print_table, run_isolated

WAYS = ("move", "finish", "step")


def _swap_step(way: str) -> None:
    """Replace the loop's `execute_step` with what `way` keeps of it."""
    import statek.runtime.loop as loop_module
    from statek.execution.step import StepResult
    from statek.models.job import Job, move_status
    from statek.models.status import DONE
    from statek.store import transition

    async def only_move(job: Job, provider: str | None = None,
                        job_uuid: str | None = None) -> StepResult:
        with transition():
            move_status(job, job.state, DONE)
        return StepResult(completed=True)

    async def only_finish(job: Job, provider: str | None = None,
                          job_uuid: str | None = None) -> StepResult:
        with transition():
            job.finish("done", None, job_uuid)
        return StepResult(completed=True)

    swaps = {"move": only_move, "finish": only_finish}
    if way in swaps:
        # setattr: mypy refuses assigning these over the module's function (their
        # defaults are not part of the dict's value type)
        setattr(loop_module, "execute_step", swaps[way])  # noqa: B010
    elif way != "step":
        raise ValueError(f"unknown way {way!r}: one of {', '.join(WAYS)}")


def child(way: str, n: int) -> dict[str, Any]:
    """One W1 run with the step swapped for `way` (in this process)."""
    from benchmarks import workloads

    _swap_step(way)
    result = workloads.w1(n)
    if result["jobs_completed"] != n:
        raise RuntimeError(f"{way}: {result['jobs_completed']} of {n} jobs completed")
    return {"way": way, "jobs_per_s": result["figure"],
            "cpu_us_per_job": result["loop_cpu_s"] / n * 1e6,
            "implementation": result["implementation"], "event_loop": result["event_loop"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="jobs per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        for way in (WAYS if round_ % 2 == 0 else WAYS[::-1]):
            runs[way].append(run_isolated("benchmarks.w1_budget", "--child", way,
                                          "--n", str(args.n)))
    cpu = {way: statistics.median(r["cpu_us_per_job"] for r in runs[way]) for way in WAYS}
    rate = {way: statistics.median(r["jobs_per_s"] for r in runs[way]) for way in WAYS}
    shares = {"loop and status move": cpu["move"], "finishing (Job.finish)":
              cpu["finish"] - cpu["move"], "the step (execute_step beyond finishing)":
              cpu["step"] - cpu["finish"]}
    print_table(("way", "jobs/s (median)", "CPU µs/job (median)", "runs (jobs/s)"),
                [(way, f"{rate[way]:,.0f}", f"{cpu[way]:.1f}",
                  " / ".join(f"{r['jobs_per_s']:,.0f}" for r in runs[way])) for way in WAYS])
    print()
    print_table(("part of a W1 job", "CPU µs/job", "share"),
                [(part, f"{us:.1f}", f"{us / cpu['step']:.0%}") for part, us in shares.items()])
    first = runs["step"][0]
    print(json.dumps({"n": args.n, "rounds": args.rounds, "cpu_us_per_job": cpu,
                      "jobs_per_s": rate, "shares_us": shares, "runs": runs,
                      "implementation": first["implementation"],
                      "event_loop": first["event_loop"]}))


if __name__ == "__main__":
    main()

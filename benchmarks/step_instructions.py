"""Instructions per `run_job_step`, counted by callgrind: a step-cost figure machine noise
cannot move (wall-clock medians of `benchmarks.step_cost` swing by up to 2x between runs on a
shared 2-core VM, instruction counts by well under 1%).

    python -m benchmarks.step_instructions              # cases a, b, c (about 3 minutes)
    python -m benchmarks.step_instructions --cases c

Each case runs twice under `valgrind --tool=callgrind` with PYTHONHASHSEED=0: once stepping
SMALL jobs and once LARGE jobs, both after the same setup and warm-up, so the difference of
the two totals, divided by the extra steps, is the cost of a step alone (start-up, imports
and job creation cancel out). Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse

from benchmarks._harness import callgrind_total, print_table, require_valgrind
from benchmarks.step_cost import CASES

SMALL, LARGE, CREATED, WARM = 50, 250, 400, 10


def child(case_key: str, n: int) -> None:
    """Create CREATED jobs, step WARM of them, then step `n` more (what callgrind counts)."""
    import asyncio

    import dbzero as db0

    import statek
    import statek.executors.utils  # imported before the counted difference
    from benchmarks._harness import fresh_store
    from benchmarks.step_cost import PROVIDER, _drive
    from statek.execution import turns
    from statek.providers import ScriptedProvider, add_provider

    # a step yields to the event loop after 0.1 s of code in one turn: by the clock, and
    # callgrind slows the process ~50x; counted runs never yield (as loop_instructions)
    turns.TURN_S = float("inf")
    case = CASES[case_key]
    with fresh_store("bench_step"):
        agent = statek.Agent("bench", "You are benchmarked.")
        params = {"warmup_code": case.warmup} if case.warmup else {}
        uuids = statek.StatekClientAPI().submit_new_job_ids(
            agent, [case.shared(i) for i in range(CREATED)], **params)
        add_provider(PROVIDER, ScriptedProvider([case.reply], latency=0))
        db0.commit()
        asyncio.run(_drive(uuids[:WARM], case.steps_per_job))
        asyncio.run(_drive(uuids[WARM:WARM + n], case.steps_per_job))
        db0.commit()


def _instructions(case_key: str, n: int) -> int:
    return callgrind_total("benchmarks.step_instructions", "--child", case_key, str(n))


def per_step(case_key: str) -> float:
    small, large = _instructions(case_key, SMALL), _instructions(case_key, LARGE)
    return (large - small) / ((LARGE - SMALL) * CASES[case_key].steps_per_job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="abc")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    require_valgrind()
    rows = [[CASES[key].name, f"{per_step(key):,.0f}"] for key in args.cases]
    print_table(["case", "instructions per step"], rows)


if __name__ == "__main__":
    main()

"""Instructions per job through the worker loop, compiled against pure: the end-to-end
compiled/pure ratio that machine noise cannot move.

    python -m benchmarks.loop_instructions            # W1 and W2 shapes, both builds (~5 min)
    python -m benchmarks.loop_instructions --shapes w1 --builds compiled   # one figure

Wall-clock ratios of the compiled and the pure build swing with the load of a shared 2-core
machine; callgrind's instruction counts do not. Each (shape, build) runs twice under
`valgrind --tool=callgrind` with PYTHONHASHSEED=0, once with SMALL and once with LARGE jobs,
all run to completion by `run_jobs_loop` (scheduler, launch, step, commit: what a worker
does). The difference of the two totals over the extra jobs is the cost of one job alone:
start-up, imports and the store's creation cancel out. What the loop does by the clock is
made count-based, so the timing of a process slowed down 50x cannot change the count: commits
(`STATEK_COMMIT_INTERVAL` set far above the run's length) and the launch's time slice per
iteration (`loop.ITERATION_SLICE_S`, unbounded here: an iteration launches until the slots
or the ready jobs run out), and a step's turn of job code (`turns.TURN_S`, unbounded: a
step never yields the event loop for having run long). Counts then repeat within ~0.1%.

Shapes: w1 is W1's job (warmup `exit('done')`, one step), w2 is W2's (no warmup, an offline
model answering `exit('ok')`: two steps). w3 (not in the default set) is W3's idle loop
iteration over S_W3 suspended parents, woken with its queue flagged: instructions per
iteration instead of per job.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from benchmarks._harness import callgrind_total, print_table, require_valgrind

SMALL, LARGE = 200, 1000
SHAPES = ("w1", "w2")
ALL_SHAPES = (*SHAPES, "w3")
S_W3 = 500  # suspended parents (and as many children) under the idle iterations
PROVIDER = "bench-loop"


@dataclass(frozen=True)
class Count:
    shape: str
    compiled: float | None  # instructions per job, compiled kernels
    pure: float | None  # instructions per job, STATEK_NO_EXTENSIONS=1

    @property
    def ratio(self) -> float | None:
        """pure / compiled: how many times fewer instructions the compiled build runs."""
        if self.pure is None or self.compiled is None:
            return None
        return self.pure / self.compiled


def child(shape: str, n: int) -> None:
    """Submit `n` jobs of `shape` and run them to completion (what callgrind counts)."""
    import asyncio

    import dbzero as db0

    import statek
    from benchmarks._harness import fresh_store
    from statek.execution import turns
    from statek.executors.utils import run_jobs_loop
    from statek.providers import ScriptedProvider, add_provider
    from statek.runtime import loop

    loop.ITERATION_SLICE_S = float("inf")  # see the module docstring
    turns.TURN_S = float("inf")  # a step's turn of code, by the clock too
    if shape == "w3":
        _idle_iterations(n)
        return
    provider = None
    with fresh_store("bench_loop"):
        api = statek.StatekClientAPI()
        shared = [{"i": i} for i in range(n)]
        if shape == "w1":
            api.submit_new_job_ids(statek.Agent("w1"), shared, warmup_code="exit('done')")
        else:
            add_provider(PROVIDER, ScriptedProvider(["exit('ok')"], latency=0))
            provider = PROVIDER
            api.submit_new_job_ids(statek.Agent("w2"), shared)
        db0.commit()
        stats = asyncio.run(run_jobs_loop(100, provider, queue_prefixes=["bench_loop"],
                                          auto_terminate=True))
    if stats.jobs_completed != n:
        raise AssertionError(f"{stats.jobs_completed} of {n} {shape} jobs completed")


def _idle_iterations(n: int) -> None:
    """W3's shape: `n` loop iterations with nothing ready over S_W3 waiting pairs."""
    import asyncio

    from benchmarks import workloads
    from benchmarks._harness import fresh_store

    async def run() -> None:
        loop, task, _ = await workloads._start_loop(100)
        await workloads._poke(loop, n, dirty_queue=True)
        await workloads._stop_loop(loop, task)

    with fresh_store(workloads.PREFIX):
        workloads.make_waiting_pairs(S_W3)
        asyncio.run(run())


def _instructions(shape: str, n: int, pure: bool) -> int:
    env = {"STATEK_COMMIT_INTERVAL": "100000", "STATEK_NO_EXTENSIONS": "1" if pure else ""}
    return callgrind_total("benchmarks.loop_instructions", "--child", shape, str(n), env=env)


def per_job(shape: str, pure: bool) -> float:
    small, large = _instructions(shape, SMALL, pure), _instructions(shape, LARGE, pure)
    return (large - small) / (LARGE - SMALL)


def measure(shapes: tuple[str, ...] = SHAPES,
            builds: tuple[str, ...] = ("compiled", "pure")) -> list[Count]:
    return [Count(shape,
                  per_job(shape, pure=False) if "compiled" in builds else None,
                  per_job(shape, pure=True) if "pure" in builds else None)
            for shape in shapes]


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_counts(counts: list[Count]) -> None:
    print_table(["shape", "instructions/job (w3: /iteration) compiled", "pure",
                 "pure/compiled"],
                [[c.shape, _cell(c.compiled, ",.0f"), _cell(c.pure, ",.0f"),
                  _cell(c.ratio, ".3f") + "x"] for c in counts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="comma-separated: w1 (W1's job), w2 (W2's two-step job), w3 "
                             "(W3's idle iteration)")
    parser.add_argument("--builds", default="compiled,pure",
                        help="comma-separated: compiled, pure (STATEK_NO_EXTENSIONS=1)")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    require_valgrind()
    shapes = tuple(s for s in args.shapes.split(",") if s)
    unknown = [s for s in shapes if s not in ALL_SHAPES]
    if unknown:
        sys.exit(f"unknown shape(s) {', '.join(unknown)}: choose from {', '.join(ALL_SHAPES)}")
    builds = tuple(b for b in args.builds.split(",") if b)
    if not builds or any(b not in ("compiled", "pure") for b in builds):
        sys.exit(f"--builds {args.builds!r}: choose compiled, pure or both")
    print_counts(measure(shapes, builds))


if __name__ == "__main__":
    main()

"""W1/W2 with the mypyc-compiled step pipeline against the pure builds, side by side.

    STATEK_COMPILE_PIPELINE=1 pip install -e .          # build the pipeline first
    python -m benchmarks.compiled_pipeline --rounds 5   # table + one JSON line

Each round runs every (workload, build) pair in a fresh process, in an order that
alternates between rounds, so drift in machine load spreads over all builds:
  pipeline  -- compiled pipeline + compiled kernels (statek/_compiled_pipeline.py hook)
  kernels   -- the default build: compiled kernels, pure pipeline
  pure      -- STATEK_NO_EXTENSIONS=1: everything pure
Reported: the median figure per pair and the ratios of medians pipeline/kernels and
pipeline/pure. A pipeline that is not built or stale makes the run fail (it would
silently measure pure code).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTOR = ROOT / "statek" / "_compiled_pipeline.py"
BUILDS = ("pipeline", "kernels", "pure")


def _command(build: str, workload: str, n: int) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_NO_")}
    if build == "pure":
        env["STATEK_NO_EXTENSIONS"] = "1"
    if build == "kernels":
        env["STATEK_NO_COMPILED_PIPELINE"] = "1"
    cmd = [sys.executable, "-m", "benchmarks.workloads", "--one", workload, "--n", str(n)]
    if build == "pipeline":  # the selector runs the module with its hook installed
        env["STATEK_REQUIRE_COMPILED_PIPELINE"] = "1"
        cmd[1:2] = [str(SELECTOR), "-m"]
    return cmd, env


def run_one(build: str, workload: str, n: int) -> dict[str, object]:
    """One data point in a fresh process; its last stdout line is the JSON result."""
    cmd, env = _command(build, workload, n)
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{build} {workload} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--w1", type=int, default=10_000, help="W1 jobs")
    parser.add_argument("--w2", type=int, default=2000, help="W2 jobs (2 steps each)")
    args = parser.parse_args(argv)
    sizes = {"W1": args.w1, "W2": args.w2}
    figures: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = BUILDS if r % 2 == 0 else BUILDS[::-1]
        for workload, n in sizes.items():
            for build in order:
                res = run_one(build, workload, n)
                figures.setdefault((workload, build), []).append(float(str(res["figure"])))
                print(f"round {r} {workload} {build:8} {res['figure']:10.0f} "
                      f"kernels={res['implementation']}", file=sys.stderr)
    summary: dict[str, dict[str, float]] = {}
    for workload in sizes:
        med = {b: statistics.median(figures[(workload, b)]) for b in BUILDS}
        summary[workload] = {**med, "pipeline/kernels": med["pipeline"] / med["kernels"],
                             "pipeline/pure": med["pipeline"] / med["pure"]}
        print(f"{workload}: " + "  ".join(f"{k} {v:,.2f}" for k, v in summary[workload].items()))
    print(json.dumps({"rounds": args.rounds, "sizes": sizes, "load": os.getloadavg(),
                      "summary": summary}))


if __name__ == "__main__":
    main()

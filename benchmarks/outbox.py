"""W11 (outbox): feeding a running worker from another process on its machine.

* submissions/s: a producer process (store opened in mode "feed") submits jobs through the
  outbox while the worker runs them, in calls of 100 jobs (as the HTTP figure's batches) and
  of 1 job; target >= 20,000 jobs/s (batches);
* submit -> first step: one job at a time, from just before `submit_new_job` in the producer to
  the first statement of the job's first step in the worker (a tool call printing
  `time.perf_counter()`, CLOCK_MONOTONIC on Linux, which both processes share); target <= 10 ms
  median;
* the worker's W1 rate (10,000 warmup-only jobs submitted before it starts, jobs/s between
  its first and its 10,000th completion, counted in the worker) alone and while a producer
  process submits through the outbox at full speed (its jobs queue behind the W1 jobs, as in
  the HTTP figure); target >= 80% kept. A third W1 run has the same producer feed another
  store: the share of the drop that is only the producer's own CPU and disk use. Measured
  in 5 interleaved (alone, fed, beside) triples; the figure is the median of the per-triple
  ratios (medians of separate runs gave 0.42-2.0 on a shared machine).

Each other figure is the median of 3 runs, each against a fresh store and worker process.

    python -m benchmarks.outbox [--quick] [--w1-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import statek

_HERE = Path(__file__).parent
RESULTS = _HERE / "results"
BATCH = 100


@statek.tool
def stamp(i: int) -> None:
    """Job code calls it first: the worker prints when (the benchmark reads its stdout)."""
    print(f"stamp {i} {time.perf_counter()!r}", flush=True)


# ------------------------------------------------------------------ roles (own processes)
def _open(root: str, mode: str) -> None:
    import dbzero as db0

    db0.init(dbzero_root=root)
    statek.init()
    statek.open_prefix("main", mode)


def setup_role(root: str, presubmit: int) -> None:
    """The agent, and `presubmit` W1 jobs (warmup only: exit)."""
    _open(root, "rw")
    agent = statek.Agent("helper", tools=[stamp])
    if presubmit:
        statek.StatekClientAPI().submit_new_job_ids(
            agent, [{"i": i} for i in range(presubmit)], warmup_code="exit('done')")
    statek.close()


def worker_role(root: str) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    _open(root, "rw")
    statek.start_statek(max_concurrency=1000)
    statek.close()


def w1_worker_role(root: str, n: int) -> None:
    """A worker that prints the rate of its first `n` completions (the W1 jobs, submitted
    before it started and so queued before anything a producer adds), then runs on."""
    import asyncio

    from statek.runner import last_stats

    _open(root, "rw")

    async def completed(count: int) -> tuple[float, float]:
        """When (wall clock, this process's CPU time) the loop's counters first show `count`
        completions (looked at every ms)."""
        while True:
            stats = last_stats()
            if stats is not None and stats.jobs_completed >= count:
                return time.perf_counter(), time.process_time()
            await asyncio.sleep(0.001)

    async def main() -> None:
        worker = asyncio.create_task(statek.start_statek_async(max_concurrency=1000))
        first, first_cpu = await completed(1)
        last, last_cpu = await completed(n)
        print(f"w1 {(n - 1) / (last - first)!r} {(n - 1) / (last_cpu - first_cpu)!r}",
              flush=True)
        await worker

    asyncio.run(main())
    statek.close()


def producer_role(root: str, calls: int, size: int) -> None:
    """Submit `calls` calls of `size` jobs (0 calls: until killed); prints the rate."""
    from statek.server.views import find_agent

    _open(root, "feed")
    api = statek.StatekClientAPI()
    agent = find_agent("helper")
    batch = [{"i": i} for i in range(size)]
    print("producer up", flush=True)
    began = time.perf_counter()
    done = 0
    while calls == 0 or done < calls:
        if size == 1:
            api.submit_new_job(agent, batch[0], warmup_code="exit(i)")
        else:
            api.submit_new_job_ids(agent, batch, warmup_code="exit(i)")
        done += 1
    print(f"rate {done * size / (time.perf_counter() - began)!r}", flush=True)
    statek.close()


def latency_role(root: str, samples: int) -> None:
    """Submit one job at a time; print when each was submitted (the worker stamps it)."""
    from statek.server.views import find_agent

    _open(root, "feed")
    api = statek.StatekClientAPI()
    agent = find_agent("helper")
    for i in range(samples):
        began = time.perf_counter()
        api.submit_new_job(agent, {"i": 10_000_000 + i}, warmup_code="stamp(i)\nexit(i)")
        print(f"sent {10_000_000 + i} {began!r}", flush=True)
        input()  # the benchmark answers once the worker stamped it
    statek.close()


# ------------------------------------------------------------------ the benchmark
class _Proc:
    """A role in its own process; its stdout is read by a thread (a full pipe never blocks
    it) and waited for line by line, with a failure bound."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.outbox", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=_HERE.parent)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, prefix: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"process ended before printing {prefix!r}: {err[-2000:]}")
            if line.startswith(prefix):
                return line

    def answer(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _setup(root: str, presubmit: int = 0) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.outbox", "--role", "setup", root,
                           str(presubmit)], capture_output=True, text=True, timeout=600,
                          cwd=_HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])


def _submit_rates(quick: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="statek-outbox-") as root:
        _setup(root)
        worker = _Proc("--role", "worker", root)
        try:
            worker.until("worker ready")
            producer = _Proc("--role", "producer", root, str(40 if quick else 200), str(BATCH))
            batched = float(producer.until("rate").split()[1])
            producer = _Proc("--role", "producer", root, str(500 if quick else 2000), "1")
            single = float(producer.until("rate").split()[1])
        finally:
            worker.stop()
    return batched, single


def _latencies(samples: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="statek-outbox-") as root:
        _setup(root)
        worker = _Proc("--role", "worker", root)
        out = []
        try:
            worker.until("worker ready")
            producer = _Proc("--role", "latency", root, str(samples))
            for _ in range(samples):
                _, number, sent = producer.until("sent").split()
                at = worker.until(f"stamp {number} ").split()[2]
                out.append(float(at) - float(sent))
                producer.answer()
        finally:
            worker.stop()
    return out


def _w1_rate(n: int, producer: str | None) -> tuple[float, float]:
    """W1 alone (None), with a producer feeding this worker ("this") or another store
    ("other": the same load on the machine, no work for this worker)."""
    with tempfile.TemporaryDirectory(prefix="statek-outbox-") as root:
        _setup(root, n)
        feeder = None
        if producer is not None:  # feeding at full speed from before the worker starts
            target = root
            if producer == "other":
                target = str(Path(root) / "other")
                _setup(target)
            feeder = _Proc("--role", "producer", target, "0", str(BATCH))
            feeder.until("producer up")
        worker = _Proc("--role", "w1worker", root, str(n))
        try:
            _, rate, cpu_rate = worker.until("w1 ").split()
        finally:
            if feeder is not None:
                feeder.stop()
            worker.stop()
    return float(rate), float(cpu_rate)


def _w1_kept(n: int, pairs: int) -> dict[str, Any]:
    """W1 alone and fed, in `pairs` interleaved triples (alone, fed, beside; then the next),
    each triple's ratios taken side by side: the machine's load drifts between triples, a
    ratio of two runs seconds apart follows it less than one of medians taken minutes
    apart. The figure is the median of the per-triple ratios. Beside it, the same per CPU
    second of the worker process ("cpu_"): what feeding costs the worker itself, which
    other processes on a shared machine do not move."""
    runs: dict[str, list[tuple[float, float]]] = {"alone": [], "fed": [], "beside": []}
    for _ in range(pairs):
        runs["alone"].append(_w1_rate(n, None))
        runs["fed"].append(_w1_rate(n, "this"))
        runs["beside"].append(_w1_rate(n, "other"))
    out: dict[str, Any] = {}
    for at, unit in ((0, ""), (1, "cpu_")):
        alone, fed, beside = ([r[at] for r in runs[k]] for k in ("alone", "fed", "beside"))
        kept = [f / a for f, a in zip(fed, alone, strict=True)]
        out.update({
            f"{unit}w1_jobs_per_s_alone": statistics.median(alone),
            f"{unit}w1_jobs_per_s_with_producer": statistics.median(fed),
            f"{unit}w1_jobs_per_s_producer_on_other_store": statistics.median(beside),
            f"{unit}w1_rate_kept": statistics.median(kept),
            f"{unit}w1_rate_kept_per_pair": kept,
            f"{unit}w1_rate_kept_producer_on_other_store": statistics.median(
                b / a for b, a in zip(beside, alone, strict=True))})
    return out


def _one_run(quick: bool) -> dict[str, Any]:
    batched, single = _submit_rates(quick)
    latency = _latencies(50 if quick else 200)
    return {"submit_jobs_per_s_batch_100": batched, "submit_jobs_per_s_single": single,
            "first_step_ms_median": statistics.median(latency) * 1e3,
            "first_step_ms_p90": sorted(latency)[int(len(latency) * 0.9)] * 1e3}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--role", default=None)
    parser.add_argument("--w1-only", action="store_true",
                        help="only the W1 alone/fed pairs (the rest takes minutes)")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    if args.role is not None:
        roles: dict[str, Callable[..., None]] = {
            "setup": setup_role, "worker": worker_role, "w1worker": w1_worker_role,
            "producer": producer_role, "latency": latency_role}
        role = roles[args.role]
        role(args.args[0], *map(int, args.args[1:]))
        return
    load = os.getloadavg()
    runs = [] if args.w1_only else [_one_run(args.quick) for _ in range(3)]
    medians: dict[str, Any] = {key: statistics.median(r[key] for r in runs)
                               for key in (runs[0] if runs else ())}
    w1 = _w1_kept(2_000 if args.quick else 10_000, 3 if args.quick else 5)
    medians.update(w1)
    from statek._speedups import IMPLEMENTATION

    result = {"workload": "W11-outbox", "date": datetime.date.today().isoformat(),
              "python": sys.version.split()[0], "kernels": IMPLEMENTATION,
              "cpus": os.cpu_count(), "quick": args.quick, "load_before": load,
              "load_after": os.getloadavg(), "medians_of_3": medians, "runs": runs,
              "targets": {"submit_jobs_per_s_batch_100": ">= 20000",
                          "first_step_ms_median": "<= 10", "w1_rate_kept": ">= 0.8"}}
    RESULTS.mkdir(exist_ok=True)
    name = "-w1-fed" if args.w1_only else ""
    out = RESULTS / f"{result['date']}-w11-outbox{name}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

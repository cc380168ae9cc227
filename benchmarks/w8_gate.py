"""W8 gate: is each compiled kernel still worth shipping?

For every kernel, the compiled and the pure twin run the same steady-state
workload (same seed, same inputs) in this one process; each sample times a
fixed number of steps, samples alternate between the twins, and the median
per-step time is compared. Exit status 1 if a kernel listed in
``statek._speedups.KEPT_KERNELS`` is below ``MIN_RATIO`` (or cannot be
measured because the extension is missing). The storage path's kernels are per-call
work around a C call (the JSON backend, dbzero's lock), so their bar is lower: each
workload class names its own ``min_ratio``.

The workload classes are also imported by ``test_w8_speedups.py`` so that the
pytest-benchmark numbers and the gate measure the same thing.

Usage: PYTHONPATH=. python benchmarks/w8_gate.py [--repeats N]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    import statek._speedups as speedups
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import statek._speedups as speedups

MIN_RATIO = 2.0
"""A kept kernel below this speedup fails the gate (the keep bar itself is 3x)."""

SEED = 20240607


class ReadyQueueWork:
    """100k jobs over 100 lanes; a step pops a 1000-job round-robin batch and
    re-queues it on one lane, so sizes stay steady."""

    kernel = "ReadyQueue"
    steps = 40

    def __init__(self, mod: ModuleType, jobs: int = 100_000, lanes: int = 100) -> None:
        self.q = mod.ReadyQueue()
        self.lanes = lanes
        for lane in range(lanes):
            self.q.push_many(range(lane, jobs, lanes), lane)
        self.tick = 0

    def step(self) -> Any:
        q = self.q
        batch = q.pop_batch(1000)
        self.tick += 1
        q.push_many(batch, self.tick % self.lanes)
        return batch


class TimerHeapWork:
    """100k timers spread over 100 s; a step advances the clock 1 s, pops the
    ~1k due timers and reschedules each ~100 s later."""

    kernel = "TimerHeap"
    steps = 20

    def __init__(self, mod: ModuleType, timers: int = 100_000) -> None:
        rng = random.Random(SEED)
        self.th = mod.TimerHeap()
        for job in range(timers):
            self.th.schedule(job, rng.random() * 100.0)
        self.jitter = [rng.random() for _ in range(4096)]
        self.now = 0.0
        self.j = 0

    def step(self) -> Any:
        self.now += 1.0
        due = self.th.pop_due(self.now)
        schedule = self.th.schedule
        base = self.now + 99.0
        jitter = self.jitter
        j = self.j
        for job in due:
            schedule(job, base + jitter[j & 4095])
            j += 1
        self.j = j
        return due


class WaiterIndexWork:
    """100k waiting jobs, 2 keys each out of 50k; a step wakes 1k keys and
    re-adds every woken job on 2 fresh keys."""

    kernel = "WaiterIndex"
    steps = 5

    def __init__(self, mod: ModuleType, jobs: int = 100_000, keys: int = 50_000) -> None:
        rng = random.Random(SEED)
        self.wi = mod.WaiterIndex()
        self.stream = [rng.randrange(keys) for _ in range(1 << 16)]
        self.s = 0
        add = self.wi.add
        for job in range(jobs):
            add(self._key(), job)
            add(self._key(), job)

    def _key(self) -> int:
        k = self.stream[self.s & 0xFFFF]
        self.s += 1
        return k

    def step(self) -> Any:
        wi = self.wi
        wake = wi.wake
        add = wi.add
        stream = self.stream
        s = self.s
        woken: list[int] = []
        for _ in range(1000):
            woken += wake(stream[s & 0xFFFF])
            s += 1
        for job in woken:
            add(stream[s & 0xFFFF], job)
            add(stream[(s + 1) & 0xFFFF], job)
            s += 2
        self.s = s
        return woken


class PartitionWork:
    """A 1000-item batch over 100 targets with ~10% already-applied items."""

    kernel = "partition_batch"
    steps = 200

    def __init__(self, mod: ModuleType, items: int = 1000, targets: int = 100) -> None:
        rng = random.Random(SEED)
        self.fn = mod.partition_batch
        ids = [1_000_000 + 7919 * t for t in range(targets)]
        counters = dict.fromkeys(ids, 0)
        self.targets: list[int] = []
        self.seqs: list[int] = []
        for _ in range(items):
            t = rng.choice(ids)
            counters[t] += 1
            self.targets.append(t)
            self.seqs.append(counters[t])
        # Mark roughly the first tenth of each target's items as applied.
        self.applied = {t: c // 10 for t, c in counters.items()}

    def step(self) -> Any:
        return self.fn(self.targets, self.seqs, self.applied)


class PackWork:
    """1,000 single pushes' packing: one (job uuid, message) pair each."""

    kernel = "pack"
    steps = 20
    min_ratio = 1.5

    def __init__(self, mod: ModuleType) -> None:
        self.fn = mod.pack
        self.pairs = [("4AXBXZ2ZH2RHNIEBUKWYABAN", f"message {i}") for i in range(1000)]

    def step(self) -> Any:
        fn = self.fn
        return [fn(pair, 2) for pair in self.pairs]


class TransitionWork:
    """1,000 transition blocks, two deep, none taking a lock (statek's default)."""

    kernel = "Transition"
    steps = 20
    min_ratio = 1.2

    def __init__(self, mod: ModuleType) -> None:
        self.block = mod.Transition(set(), _no_lock)

    def step(self) -> Any:
        block = self.block
        for _ in range(1000):
            with block, block:
                pass
        return block.active


def _no_lock() -> Any:
    raise AssertionError("nothing autocommits: no lock is taken")


WORKLOADS: dict[str, Callable[[ModuleType], Any]] = {
    "ReadyQueue": ReadyQueueWork,
    "WaiterIndex": WaiterIndexWork,
    "TimerHeap": TimerHeapWork,
    "partition_batch": PartitionWork,
    "pack": PackWork,
    "Transition": TransitionWork,
}


def _sample(work: Any, steps: int) -> float:
    """Seconds per step over `steps` steps, with the cyclic GC out of the way."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(steps):
            work.step()
        return (time.perf_counter() - t0) / steps
    finally:
        gc.enable()


def measure(kernel: str, repeats: int) -> tuple[float, float]:
    """Median seconds per step for (pure, compiled) on identical inputs."""
    pure, compiled = speedups.twins_of(kernel)
    assert compiled is not None
    cls = WORKLOADS[kernel]
    works = {"pure": cls(pure), "compiled": cls(compiled)}
    steps: int = cls.steps  # type: ignore[attr-defined]
    samples: dict[str, list[float]] = {"pure": [], "compiled": []}
    for work in works.values():
        work.step()  # warm-up, also proves both start from the same state
    for _ in range(repeats):
        for name, work in works.items():
            samples[name].append(_sample(work, steps))
    return statistics.median(samples["pure"]), statistics.median(samples["compiled"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    if speedups.compiled is None:
        print(f"W8 gate: compiled kernels unavailable ({speedups.COMPILED_UNAVAILABLE_REASON})")
        print("build them first: python setup.py build_ext --inplace")
        return 1

    t_start = time.perf_counter()
    header = f"{'kernel':<16} | {'pure':>10} | {'compiled':>10} | {'ratio':>7} | kept"
    print(header)
    print("-" * len(header))
    failed: list[str] = []
    for kernel in WORKLOADS:
        pure_s, comp_s = measure(kernel, args.repeats)
        ratio = pure_s / comp_s if comp_s > 0 else float("inf")
        kept = kernel in speedups.KEPT_KERNELS
        verdict = "yes" if kept else "no"
        floor = float(getattr(WORKLOADS[kernel], "min_ratio", MIN_RATIO))
        if kept and ratio < floor:
            verdict += f"  FAIL (< {floor:.1f}x)"
            failed.append(kernel)
        print(
            f"{kernel:<16} | {pure_s * 1e3:>8.3f}ms | {comp_s * 1e3:>8.3f}ms | "
            f"{ratio:>6.2f}x | {verdict}"
        )
    print(
        f"(median of {args.repeats} samples per step; {time.perf_counter() - t_start:.1f}s total)"
    )
    if failed:
        print(f"W8 gate FAILED: {', '.join(failed)}")
        return 1
    print("W8 gate passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

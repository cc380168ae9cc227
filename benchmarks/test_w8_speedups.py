"""pytest-benchmark: compiled vs pure scheduler kernels on identical inputs.

Each kernel benchmark builds the same seeded workload (from ``w8_gate``) for
both twins and times one steady-state step, grouped per kernel so the report
puts the pair side by side. Micro-benchmarks of single calls show the
per-call floor the scheduler pays when it cannot batch.

Run: PYTHONPATH=. pytest benchmarks/test_w8_speedups.py --benchmark-only
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from statek import _speedups

try:
    from benchmarks.w8_gate import WORKLOADS
except ImportError:  # benchmarks/ on sys.path instead of the repo root
    from w8_gate import WORKLOADS  # type: ignore[no-redef,import-not-found,unused-ignore]

IMPLS = ["pure", "compiled"]


def _module(name: str, kernel: str = "ReadyQueue") -> ModuleType:
    pure, compiled = _speedups.twins_of(kernel)
    if name == "pure":
        return pure
    if compiled is None:
        pytest.skip(f"compiled kernels unavailable: {_speedups.COMPILED_UNAVAILABLE_REASON}")
    return compiled


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kernel", list(WORKLOADS))
def test_kernel(benchmark: Any, kernel: str, impl: str) -> None:
    work = WORKLOADS[kernel](_module(impl, kernel))
    work.step()  # warm-up
    benchmark.group = f"w8-{kernel}"
    benchmark.extra_info.update(kernel=kernel, impl=impl)
    result = benchmark(work.step)
    assert result is not None


def _micro_cases() -> dict[str, Callable[[ModuleType], Callable[[], Any]]]:
    def push_pop(mod: ModuleType) -> Callable[[], Any]:
        q = mod.ReadyQueue()
        q.push_many(range(1000))

        def run() -> Any:
            q.push(10**6)
            return q.pop_lane(0, 1)

        return run

    def schedule_cancel(mod: ModuleType) -> Callable[[], Any]:
        th = mod.TimerHeap()
        for job in range(1000):
            th.schedule(job, float(job))

        def run() -> Any:
            th.schedule(10**6, 500.5)
            return th.cancel(10**6)

        return run

    def add_wake(mod: ModuleType) -> Callable[[], Any]:
        w = mod.WaiterIndex()
        for job in range(1000):
            w.add(job % 100, job)

        def run() -> Any:
            w.add(10**6, 10**6)
            w.add(10**6 + 1, 10**6)
            return w.wake(10**6)

        return run

    return {"push+pop_lane": push_pop, "schedule+cancel": schedule_cancel, "add+wake": add_wake}


MICRO = _micro_cases()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(MICRO))
def test_single_call(benchmark: Any, case: str, impl: str) -> None:
    run = MICRO[case](_module(impl))
    benchmark.group = f"micro-{case}"
    benchmark(run)


@pytest.mark.parametrize("kernel", list(WORKLOADS))
def test_twins_agree_on_workload(kernel: str) -> None:
    """The benchmarked step produces identical results in both twins."""
    work = WORKLOADS[kernel]
    a, b = work(_module("pure", kernel)), work(_module("compiled", kernel))
    for _ in range(3):
        assert a.step() == b.step()

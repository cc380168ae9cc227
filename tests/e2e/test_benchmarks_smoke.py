"""Smoke test of benchmarks/workloads.py: every workload runs in-process at a tiny size and
returns sane values. Guards the benchmark code against rot; never asserts timings."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import queue_instructions, workloads

HANG_S = 60.0  # a hang (see the delegate/nested-transition note in workloads) fails loudly


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _common(result: dict[str, Any], workload: str, unit: str) -> float:
    assert result["workload"] == workload
    assert result["unit"] == unit
    assert result["implementation"] in ("compiled", "pure")
    figure = float(result["figure"])
    assert math.isfinite(figure)
    return figure


def test_w1_completes_every_job() -> None:
    got = workloads.w1(50, concurrency=10)
    assert _common(got, "W1", "jobs/s") > 0
    assert got["jobs_completed"] == 50
    assert got["steps_failed"] == 0
    assert got["event_loop"] in ("uvloop", "asyncio")  # the loop a worker would run on


def test_queue_instruction_cases_do_the_work_they_count() -> None:
    """Each callgrind case of benchmarks/queue_instructions.py, in process at a tiny size:
    the pushes queue every message, the drain delivers every one."""
    assert queue_instructions.child("push", 1, 30, check=True) == (30, 0)
    assert queue_instructions.child("push", 500, 1200, check=True) == (1200, 0)
    assert queue_instructions.child("drain", 0, 1500, check=True) == (1500, 0)
    assert queue_instructions.child("drain", 1, 1500, check=True) == (1500, 1500)
    assert queue_instructions.child("drain_done", 1, 1500, check=True) == (1500, 1500)


def test_restart_queues_every_ready_job() -> None:
    got = workloads.restart(60)
    assert _common(got, "restart", "µs/job") > 0
    assert got["queued"] == 60


def test_w2_two_steps_per_job() -> None:
    got = workloads.w2(20, concurrency=5)
    assert _common(got, "W2", "steps/s") > 0
    assert got["jobs_completed"] == 20
    assert got["steps_done"] == 40
    assert got["provider_calls"] == 20
    assert got["steps_failed"] == 0


def test_w3_iterates_without_running_anything() -> None:
    got = workloads.w3(20, iterations=20)
    assert _common(got, "W3", "µs/iteration") > 0
    assert got["steps_done"] == 0
    assert got["ready_after"] == 0
    assert got["waiting_indexed"] == 40  # 20 parents on a child key + 20 children on a timer
    assert got["idle_us"] > 0 and got["unsuspend_us"] > 0


def test_w4_delivers_every_message() -> None:
    got = workloads.w4(200, jobs=20)
    assert _common(got, "W4", "µs/msg") > 0
    assert got["queued"] == got["delivered"] == got["in_inboxes"] == 200
    assert got["left"] == 0
    assert got["reopened_ready"] == 20
    assert got["jobs_done_before"] == 20


def test_w5_latencies_are_positive() -> None:
    got = workloads.w5(40, samples=5, gap=0.001)
    _common(got, "W5", "ms (worse median)")
    print("W5 stuck:", got["stuck"])
    assert got["missing"] == 0
    assert got["samples_first"] == got["samples_resume"] == 5
    assert got["submit_to_first_step_ms"] > 0
    assert got["submit_return_to_first_step_ms"] > 0
    assert got["child_done_to_parent_resume_ms"] > 0
    assert got["jobs_completed"] == 10  # 5 parents and their 5 children


def test_w6_reports_share_of_ideal() -> None:
    got = workloads.w6(40, concurrency=20, latency=0.01)
    assert _common(got, "W6", "% of ideal") > 0
    assert got["slow_run"]["steps_done"] == 80
    assert got["cpu_run"]["steps_done"] == 80
    assert got["event_loop"] in ("uvloop", "asyncio")
    assert got["ideal_steps_per_s"] == min(got["provider_bound_steps_per_s"],
                                           got["cpu_bound_steps_per_s"])


def test_w7_indexes_every_suspended_job() -> None:
    got = workloads.w7(200)
    _common(got, "W7", "bytes/job")  # RSS deltas at this size are noise: no sign check
    assert got["params"]["n"] == 200
    assert got["rebuild_counts"]["suspended"] == 200
    assert got["waiters_first"] == got["waiters_second"] == 100
    assert got["timers_first"] == got["timers_second"] == 100
    assert got["python_objects_bytes_per_job"] > 0


def _wait_state(job: Any) -> tuple[str, str, list[str]]:
    future = job.awaiting
    return str(job.status), str(future.kind), [kind for kind, _ in future.wake_keys()]


def test_direct_setup_matches_real_steps() -> None:
    """make_waiting_pairs writes what real steps of the same warmups leave behind."""
    import dbzero as db0

    import statek
    from benchmarks._harness import fresh_store
    from statek.executors.utils import run_job_step
    from statek.runtime.scheduler import Scheduler

    with fresh_store(workloads.PREFIX) as root:
        workloads._reopen(root)
        child_agent = statek.SupervisedAgent("real-child")
        child_agent.update_warmup_def(workloads.CHILD_WARMUP)
        parent_agent = statek.Agent("real-parent")
        parent = statek.StatekClientAPI().submit_new_job(
            parent_agent, {"i": 0, "child_agent": child_agent},
            warmup_code=workloads.PARENT_WARMUP)
        assert asyncio.run(run_job_step(parent)) is False
        child = parent.awaiting.target
        assert asyncio.run(run_job_step(child)) is False
        real = (_wait_state(parent), _wait_state(child))
        db0.commit()
        del parent, child
        scheduler = Scheduler()
        scheduler.rebuild()
        real_index = (len(scheduler.waiters), len(scheduler.timers), len(scheduler.ready))

    with fresh_store(workloads.PREFIX):
        workloads.make_waiting_pairs(1)
        from statek.models.job import Job

        jobs = list(db0.find(Job))
        by_role = {job.jobdef.agent.role: job for job in jobs}
        direct = (_wait_state(by_role["bench-parent"]), _wait_state(by_role["bench-child"]))
        assert by_role["bench-child"].parent == by_role["bench-parent"]
        assert by_role["bench-parent"].awaiting.target == by_role["bench-child"]
        del jobs, by_role
        scheduler = Scheduler()
        scheduler.rebuild()
        direct_index = (len(scheduler.waiters), len(scheduler.timers), len(scheduler.ready))

    assert direct == real
    assert real[0][2] == ["job"] and real[1][2] == ["time"]
    assert direct_index == real_index == (1, 1, 0)


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_step_cost_cases_complete(case: str) -> None:
    """benchmarks.step_cost (and step_instructions, which drives the same cases) finish
    every job of each case in the steps the case claims."""
    from benchmarks import step_cost

    assert 0 < step_cost.measure(step_cost.CASES[case], 20) < 1e6


@pytest.mark.parametrize("shape", ["w1", "w2"])
@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_loop_instruction_shapes_complete(shape: str, pure: bool) -> None:
    """The job shapes the end-to-end instruction gate counts run every job to completion
    through the loop (the child asserts it), in both builds, without valgrind."""
    env = dict(os.environ, STATEK_COMMIT_INTERVAL="100000")
    env.pop("STATEK_NO_EXTENSIONS", None)
    if pure:
        env["STATEK_NO_EXTENSIONS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loop_instructions", "--child", shape, "30"],
        capture_output=True, text=True, timeout=300, env=env,
        cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr


def test_loop_instruction_ratio_reads_both_builds() -> None:
    from benchmarks.loop_instructions import Count

    assert Count("w1", 200.0, 300.0).ratio == 1.5
    assert Count("w1", 200.0, None).ratio is None


def test_w9_runs_every_job_over_real_http(tmp_path: Path) -> None:
    """W9 at a tiny size: a worker process, the built-in provider over each installed HTTP
    transport, the mock server process."""
    from statek.providers.transports import available_clients

    clients = sorted(available_clients())
    out = tmp_path / "w9.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.w9_http", "--only", "W9", "--n", "40",
         "--concurrency", "20", "--repeats", "1", "--no-ceiling", "--clients", ",".join(clients),
         "--run-timeout", "120", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(row["jobs_failed"] == 0 for row in rows), rows
    assert all(row["calls_per_s"] > 0 for row in rows)
    assert sorted(row["client"] for row in rows) == clients


def test_w1_budget_runs_every_way_to_completion(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import w1_budget

    w1_budget.main(["--n", "40", "--rounds", "1"])  # each way's child raises if a job is left
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(got["cpu_us_per_job"]) == {"move", "finish", "step"}
    assert all(len(runs) == 1 for runs in got["runs"].values())
    assert all(us > 0 for us in got["cpu_us_per_job"].values())

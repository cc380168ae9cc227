"""End-to-end tests of the worker loop with the offline scripted provider."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.executors.utils import (
    AgentLoopDef,
    process_push_notifications,
    run_agentic_fleet,
    run_agentic_loop,
    run_job_step,
    run_jobs_loop,
    unsuspend_jobs,
)
from statek.models.status import JobStatus
from statek.providers import ScriptedProvider, add_provider, remove_provider


def _supervised(role: str, warmup: str) -> statek.SupervisedAgent:
    agent = statek.SupervisedAgent(role)
    agent.update_warmup_def(warmup)
    return agent


async def test_parent_waits_for_fifty_children(api: statek.StatekClientAPI) -> None:
    child = _supervised("child", "exit(k * k)")
    parent = statek.Agent("parent")
    job = api.submit_new_job(parent, {"child": child}, warmup_code=(
        "futures = [delegate(child, k=i) for i in range(50)]\n"
        "exit(sum(get_all(futures).value))"))
    stats = await run_jobs_loop(20, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == sum(i * i for i in range(50))
    assert len(db0.find(statek.Job)) == 51  # exactly 50 children, none started twice
    assert len(db0.find(statek.Job, JobStatus.DONE)) == 51
    assert stats.stranded == 0 and stats.jobs_completed == 51
    assert 1 <= stats.max_in_flight <= 20


async def test_timer_fires_close_to_its_deadline(api: statek.StatekClientAPI,
                                                 agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, warmup_code=(
        "import time\nstart = time.time()\nsleep(0.2).value\nexit(time.time() - start)"))
    await run_jobs_loop(10, queue_prefixes=["test"], auto_terminate=True)
    assert 0.2 <= job.exit_status < 0.25


async def test_messages_reach_suspended_and_done_jobs(api: statek.StatekClientAPI) -> None:
    add_provider("scripted", ScriptedProvider(["exit('reopened')"]))
    try:
        waiter_agent = statek.Agent("waiter")
        waiter = api.submit_new_job(waiter_agent, warmup_code="exit(wait_message().value)")
        finished = api.submit_new_job(waiter_agent, warmup_code="exit('first')")

        async def push_later() -> None:
            await asyncio.sleep(0.1)
            api.push_message(waiter, "ping")
            api.push_message(finished, "again please")

        pusher = asyncio.create_task(push_later())
        loop = asyncio.create_task(run_jobs_loop(10, queue_prefixes=["test"]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
                waiter.is_done and finished.exit_status == "reopened"):
            await asyncio.sleep(0.02)
        loop.cancel()
        await asyncio.gather(loop, pusher, return_exceptions=True)
        assert waiter.exit_status == "ping"
        assert finished.exit_status == "reopened"
        assert finished.messages == ["again please"]
    finally:
        remove_provider("scripted")


async def test_single_agent_loop_turns_events_into_jobs(api: statek.StatekClientAPI) -> None:
    worker = _supervised("doubler", "exit(task * 2)")
    for i in range(10):
        api.push_event(worker, i)
    stats = await run_agentic_loop(worker, None, lambda: 0, ["test"], max_concurrency=4,
                                   auto_terminate=True)
    results = sorted(j.exit_status for j in db0.find(statek.Job))
    assert results == [i * 2 for i in range(10)]
    assert stats.events_started + stats.jobs_started_by_func == 10
    assert stats.max_in_flight <= 4


async def test_fleet_of_three_shares_capacity(api: statek.StatekClientAPI) -> None:
    agents = [_supervised(f"a{n}", f"exit(('a{n}', task))") for n in range(3)]
    for agent in agents:
        for i in range(20):
            api.push_event(agent, i)
    defs = [AgentLoopDef(a, None, lambda: 0) for a in agents]
    stats = await run_agentic_fleet(defs, ["test"], max_concurrency=6, auto_terminate=True)
    done = [j.exit_status for j in db0.find(statek.Job, JobStatus.DONE)]
    assert len(done) == 60
    assert {s[0] for s in done} == {"a0", "a1", "a2"}
    assert stats.max_in_flight <= 6


async def test_fleet_fairness_busy_agent_does_not_starve_others(
        api: statek.StatekClientAPI) -> None:
    busy = statek.Agent("busy")
    quiet = statek.Agent("quiet")
    order: list[str] = []

    @statek.tool
    def mark(name: str) -> None:
        order.append(name)

    busy.tool_names = ("mark",)
    quiet.tool_names = ("mark",)
    api.submit_new_job_ids(busy, [None] * 200, warmup_code="mark('busy')\nexit(1)")
    api.submit_new_job_ids(quiet, [None] * 5, warmup_code="mark('quiet')\nexit(1)")
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    # round-robin lanes: all quiet jobs run among the first few dozen, not after 200 busy ones
    assert max(i for i, name in enumerate(order) if name == "quiet") < 20


async def test_in_flight_never_exceeds_max_concurrency(api: statek.StatekClientAPI,
                                                       agent: statek.Agent) -> None:
    running = {"now": 0, "max": 0}

    @statek.tool
    async def slow_work(x: int) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.005)
        running["now"] -= 1
        return x

    agent.tool_names = ("slow_work",)
    api.submit_new_job_ids(agent, [{"x": i} for i in range(60)],
                           warmup_code="exit(slow_work(x))")
    stats = await run_jobs_loop(7, queue_prefixes=["test"], auto_terminate=True)
    assert stats.max_in_flight <= 7
    assert 1 < running["max"] <= 7
    assert len(db0.find(statek.Job, JobStatus.DONE)) == 60


async def test_poisoned_event_does_not_stop_other_agents(api: statek.StatekClientAPI) -> None:
    good = _supervised("good", "exit(task)")
    bad = _supervised("bad", "exit(task + other)")  # two external locals: cannot bind an event
    api.queue.push_event(bad, 1)  # the queue takes it (the client API refuses it at once)
    api.push_event(good, 2)
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert [j.exit_status for j in db0.find(statek.Job)] == [2]
    queue = statek.StatekPushQueue()
    (letter,) = list(queue.dead_letters)
    assert letter["kind"] == "event" and "'bad'" in letter["reason"]
    assert "exactly one outside local" in letter["reason"]


async def test_message_for_missing_job_becomes_dead_letter(api: statek.StatekClientAPI,
                                                           agent: statek.Agent) -> None:
    queue = statek.StatekPushQueue()
    queue.push_message("NOSUCHJOB000000000000000", "lost?")
    job = api.submit_new_job(agent, warmup_code="exit(wait_message().value)")
    queue.push_message(job, "found")
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == "found"
    (letter,) = list(queue.dead_letters)
    assert letter["item"] == "lost?" and "no job" in letter["reason"]
    assert queue.message_count() == 0


async def test_auto_terminate_reports_stranded_jobs(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    api.submit_new_jobs_batch(agent, [None] * 3, warmup_code="exit(wait_message().value)")
    stats = await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert stats.stranded == 3


async def test_start_jobs_func_gets_real_free_slots(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    seen: list[int] = []
    remaining = {"n": 25}

    def start(capacity: int) -> int:
        seen.append(capacity)
        n = min(capacity, remaining["n"])
        remaining["n"] -= n
        api.submit_new_job_ids(agent, [None] * n, warmup_code="exit(0)")
        return n

    stats = await run_jobs_loop(5, queue_prefixes=["test"], start_jobs_func=start,
                                auto_terminate=True)
    assert max(seen) <= 5 and stats.jobs_started_by_func == 25
    assert len(db0.find(statek.Job, JobStatus.DONE)) == 25


async def test_unsuspend_costs_only_what_changed(api: statek.StatekClientAPI,
                                                 agent: statek.Agent,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ids = api.submit_new_job_ids(agent, [None] * 300, warmup_code="sleep(3600).value")
    for job_uuid in ids:
        await run_job_step(db0.fetch(job_uuid))
    fetched: list[Any] = []
    real_fetch = db0.fetch
    monkeypatch.setattr(db0, "fetch", lambda *a, **k: fetched.append(a) or real_fetch(*a, **k))
    assert unsuspend_jobs() == 0
    assert fetched == []  # nothing became ready: no job was even looked at


def test_start_statek_inside_a_running_loop_is_refused() -> None:
    async def inner() -> None:
        statek.start_statek()

    with pytest.raises(RuntimeError, match="inside an active event loop"):
        asyncio.run(inner())


def test_process_push_notifications_batches(api: statek.StatekClientAPI,
                                            agent: statek.Agent) -> None:
    jobs = api.submit_new_jobs_batch(agent, [None] * 3)
    queue = statek.StatekPushQueue()
    queue.push_messages([(jobs[i % 3], f"m{i}") for i in range(10)])
    assert process_push_notifications(4, 6, queue_prefixes=["test"]) == 6
    assert queue.message_count() == 4
    assert process_push_notifications(queue_prefixes=["test"]) == 4
    assert jobs[0].messages == ["m0", "m3", "m6", "m9"]


async def test_stats_report_queue_depth_and_latency(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, warmup_code="exit(wait_message().value)")
    api.push_message(job, "one")
    stats = await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert stats.messages_delivered == 1 and stats.queue_depth == 0
    assert stats.steps_done >= 1 and stats.step_latency_median() > 0
    assert stats.iterations >= 1 and stats.iteration_time_median() > 0
    assert stats.as_dict()["jobs_completed"] == 1


async def test_cancelling_a_job_on_a_timer_lets_auto_terminate_return(
        api: statek.StatekClientAPI) -> None:
    """The cancelled job's timer stayed in the scheduler: an auto_terminate loop waited for
    it to fire (found by a new user's trial)."""
    agent = statek.Agent("sleeper", metadata={"MODEL": "scripted/demo"})
    job = api.submit_new_job(agent, {}, warmup_code="sleep(600).value\nexit(1)")
    loop_task = asyncio.create_task(run_jobs_loop(2, queue_prefixes=["test"],
                                                  auto_terminate=True))
    deadline = time.monotonic() + 60  # a failure bound, not a pause
    while job.status != JobStatus.SUSPENDED:
        assert time.monotonic() < deadline and not loop_task.done()
        await asyncio.sleep(0.01)
    assert api.cancel_job(job) is True
    stats = await asyncio.wait_for(loop_task, 60)  # not the timer's 600 s
    assert job.status == JobStatus.DONE and job.error == "cancelled"
    assert stats.jobs_completed == 0

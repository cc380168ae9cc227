"""run_job_step with futures: suspension, readiness, replay-safe resume, restarts."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.executors.utils import run_job_step, unsuspend_jobs
from statek.models.status import JobStatus
from tests.store.test_queue_cross_prefix import kernels  # noqa: F401
from tests.support.speedups_fixture import sched_impl  # noqa: F401

pytestmark = pytest.mark.usefixtures("execution_mode")  # both modes


@pytest.fixture
def helper(statek_store: str) -> statek.SupervisedAgent:
    """An agent whose jobs finish in their warmup with k * 10."""
    agent = statek.SupervisedAgent("helper", "You help.")
    agent.update_warmup_def("exit(k * 10)")
    return agent


def children_of(parent: Any) -> list[Any]:
    """The parent's child jobs, in the order of their `k`."""
    kids = [job for job in db0.find(statek.Job) if job.parent == parent]
    return sorted(kids, key=lambda job: job.locals.get("k", 0))


def restart(db_root: Path, prefix: str) -> None:
    statek.close()
    db0.init(dbzero_root=str(db_root))
    statek.init()
    statek.open_prefix(prefix, "rw")


async def wait_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.01)


# --- delegate / get_all / get_any ---------------------------------------------------------------


async def test_delegate_fifty_and_get_all_is_replay_safe(
        api: statek.StatekClientAPI, agent: statek.Agent,
        helper: statek.SupervisedAgent) -> None:
    warmup = ("print('start')\n"
              "vals = get_all([delegate(helper, k=i) for i in range(50)]).value\n"
              "print('sum', sum(vals))\n"
              "exit(list(vals))")
    parent = api.submit_new_job(agent, {"helper": helper}, warmup_code=warmup)
    assert await run_job_step(parent) is False
    assert parent.status == JobStatus.SUSPENDED
    kids = children_of(parent)
    assert len(kids) == 50
    for _ in range(3):  # stepping a suspended job does nothing and makes no children
        assert await run_job_step(parent) is False
    assert len(children_of(parent)) == 50
    for kid in kids[:10]:
        assert await run_job_step(kid) is True
    assert await run_job_step(parent) is False  # 10 of 50 ready: still waiting
    assert parent.status == JobStatus.SUSPENDED
    for kid in kids[10:]:
        assert await run_job_step(kid) is True
    assert await run_job_step(parent) is True
    assert list(parent.exit_status) == [i * 10 for i in range(50)]
    assert parent.console == ["start\n", f"sum {sum(range(50)) * 10}\n"]
    assert len(children_of(parent)) == 50
    assert len(db0.find(statek.Job)) == 51
    assert parent.sites is None and parent.awaiting is None


async def test_futures_kept_in_locals_across_statements(
        api: statek.StatekClientAPI, agent: statek.Agent,
        helper: statek.SupervisedAgent) -> None:
    warmup = ("futs = [delegate(helper, k=i) for i in range(5)]\n"
              "first = futs[0].value\n"
              "rest = get_all(futs[1:]).value\n"
              "exit([first, *rest])")
    parent = api.submit_new_job(agent, {"helper": helper}, warmup_code=warmup)
    assert await run_job_step(parent) is False
    kids = children_of(parent)
    assert len(kids) == 5
    await run_job_step(kids[0])
    assert await run_job_step(parent) is False  # past `first`, waiting in `rest`
    assert parent.locals["first"] == 0 and parent.stmt == 2
    for kid in kids[1:]:
        await run_job_step(kid)
    assert await run_job_step(parent) is True
    assert list(parent.exit_status) == [0, 10, 20, 30, 40]
    assert len(children_of(parent)) == 5


async def test_get_any_resumes_with_the_first_ready(
        api: statek.StatekClientAPI, agent: statek.Agent,
        helper: statek.SupervisedAgent) -> None:
    warmup = ("slow = sleep(3600)\n"
              "fast = delegate(helper, k=7)\n"
              "exit(get_any(slow, fast).value)")
    parent = api.submit_new_job(agent, {"helper": helper}, warmup_code=warmup)
    assert await run_job_step(parent) is False
    (kid,) = children_of(parent)
    assert await run_job_step(parent) is False
    assert await run_job_step(kid) is True
    assert await run_job_step(parent) is True
    assert parent.exit_status == 70
    assert len(children_of(parent)) == 1


async def test_child_failure_resolves_with_none(api: statek.StatekClientAPI,
                                                agent: statek.Agent) -> None:
    broken = statek.SupervisedAgent("broken", "")
    broken.update_warmup_def("1 / 0")
    parent = api.submit_new_job(agent, {"b": broken},
                                warmup_code="r = delegate(b).value\nexit(['got', r])")
    assert await run_job_step(parent) is False
    (kid,) = children_of(parent)
    assert await run_job_step(kid) is True
    assert kid.error and "ZeroDivisionError" in kid.error
    assert await run_job_step(parent) is True
    assert list(parent.exit_status) == ["got", None]


# --- timers ---------------------------------------------------------------------------------------


async def test_sleep_timer_readiness(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="t = sleep(0.2)\nv = t.value\nexit('woke')")
    started = time.time()
    assert await run_job_step(job) is False
    assert job.status == JobStatus.SUSPENDED
    deadline = job.awaiting.deadline
    assert started + 0.15 < deadline < time.time() + 0.25
    assert await run_job_step(job) is False  # not yet
    assert job.status == JobStatus.SUSPENDED
    await wait_until(deadline)
    assert await run_job_step(job) is True
    assert job.exit_status == "woke"
    assert job.locals["v"] == pytest.approx(deadline)


async def test_sleep_until_datetime(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=0.3)
    naive = (when + datetime.timedelta(seconds=0.1)).replace(tzinfo=None)  # naive = UTC
    job = api.submit_new_job(agent, {"when": when, "naive": naive}, warmup_code=(
        "sleep_until(when)\nprint('first')\nlater = sleep_until(naive).value\nexit('done')"))
    assert await run_job_step(job) is False
    assert job.awaiting.deadline == pytest.approx(when.timestamp(), abs=0.002)
    assert await run_job_step(job) is False
    await wait_until(when.timestamp())
    assert await run_job_step(job) is False
    assert job.console == ["first\n"]
    assert job.awaiting.deadline == pytest.approx(
        naive.replace(tzinfo=datetime.UTC).timestamp(), abs=0.002)
    await wait_until(job.awaiting.deadline)
    assert await run_job_step(job) is True and job.exit_status == "done"
    assert job.console == ["first\n"]


async def test_sleep_rejects_bad_arguments(api: statek.StatekClientAPI,
                                           agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="sleep(-1)")
    assert await run_job_step(job) is True
    assert "ValueError" in (job.error or "")
    other = api.submit_new_job(agent, {}, warmup_code="sleep_until('tomorrow')")
    assert await run_job_step(other) is True
    assert "TypeError" in (other.error or "")


async def test_bare_future_statement_waits(api: statek.StatekClientAPI,
                                           agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="sleep(0.15)\nprint('after')\nexit(1)")
    assert await run_job_step(job) is False
    assert job.status == JobStatus.SUSPENDED and job.console == []
    await wait_until(job.awaiting.deadline)
    assert await run_job_step(job) is True
    assert job.console == ["after\n"]  # no echo of the future either


async def test_statements_before_the_suspension_never_rerun(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    warmup = ("print('before')\ncount = [1]\ncount.append(2)\n"
              "a = sleep(0.05).value + sleep(0.1).value\n"
              "print('after', len(count))\nexit(len(count))")
    job = api.submit_new_job(agent, {}, warmup_code=warmup)
    steps = 0
    while not await run_job_step(job):
        steps += 1
        assert steps < 100
        await asyncio.sleep(0.02)
    assert job.console == ["before\n", "after 2\n"]
    assert job.exit_status == 2


# --- messages ------------------------------------------------------------------------------------


async def test_wait_message(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code=(
        "m1 = wait_message().value\nprint('got', m1)\nm2 = wait_message().value\n"
        "exit([m1, m2])"))
    assert await run_job_step(job) is False
    assert job.status == JobStatus.SUSPENDED
    assert await run_job_step(job) is False
    job.push_user_message("hello")
    assert job.status == JobStatus.STARTED  # delivery wakes it
    assert await run_job_step(job) is False
    assert job.console == ["got hello\n"] and job.status == JobStatus.SUSPENDED
    job.push_user_message({"n": 2})
    assert await run_job_step(job) is True
    assert job.exit_status[0] == "hello" and dict(job.exit_status[1]) == {"n": 2}
    assert job.unread_messages == 0


async def test_message_already_there_does_not_suspend(api: statek.StatekClientAPI,
                                                      agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="exit(wait_message().value)")
    job.push_user_message("early")
    assert await run_job_step(job) is True
    assert job.exit_status == "early"


# --- restarts ------------------------------------------------------------------------------------


async def test_suspended_job_resumes_after_a_restart(
        api: statek.StatekClientAPI, agent: statek.Agent, helper: statek.SupervisedAgent,
        db_root: Path, statek_store: str) -> None:
    warmup = ("import math\nprint('a')\nbase = math.floor(2.5)\n"
              "t = sleep(0.2).value\n"
              "kid = delegate(helper, k=base).value\n"
              "print('b', kid)\nexit(kid + base)")
    job = api.submit_new_job(agent, {"helper": helper}, warmup_code=warmup)
    uuid = job.uuid
    assert await run_job_step(job) is False
    deadline = job.awaiting.deadline
    del job
    restart(db_root, statek_store)
    client = statek.StatekClientAPI()
    job = client.get_job(uuid)
    assert job.status == JobStatus.SUSPENDED and job.stmt == 3
    assert await run_job_step(job) is False  # timer not due yet
    await wait_until(deadline)
    assert await run_job_step(job) is False  # now waiting on the child
    assert job.stmt == 4
    (kid,) = children_of(job)
    kid_uuid = kid.uuid
    del job, kid
    restart(db_root, statek_store)
    kid = statek.StatekClientAPI().get_job(kid_uuid)
    assert await run_job_step(kid) is True
    del kid
    job = statek.StatekClientAPI().get_job(uuid)
    assert await run_job_step(job) is True
    assert job.console == ["a\n", "b 20\n"]
    assert job.exit_status == 22
    assert len(children_of(job)) == 1



async def test_first_unsuspend_in_a_new_process_counts_what_it_moved(
        api: statek.StatekClientAPI, agent: statek.Agent, helper: statek.SupervisedAgent,
        db_root: Path, statek_store: str, kernels: ModuleType) -> None:  # noqa: F811
    """Futures that became ready while no worker ran: the first `unsuspend_jobs()` of the next
    process rebuilds the scheduler, moves those jobs, and must say how many it moved."""
    # 2 s: long enough that no loaded machine passes it within the step itself (0.05 s was
    # passed under isolation="process" on a busy machine: no suspension, the test failed)
    sleepers = api.submit_new_job_ids(agent, [None] * 2, warmup_code="sleep(2).value")
    long_sleeper = api.submit_new_job(agent, warmup_code="sleep(3600).value")
    parent = api.submit_new_job(agent, {"helper": helper},
                                warmup_code="exit(delegate(helper, k=1).value)")
    for job in [*(db0.fetch(u) for u in sleepers), long_sleeper, parent]:
        assert await run_job_step(job) is False
    deadline = db0.fetch(sleepers[-1]).awaiting.deadline
    (kid,) = children_of(parent)
    uuids = {"kid": kid.uuid, "parent": parent.uuid, "long": long_sleeper.uuid}
    del job, kid, parent, long_sleeper
    restart(db_root, statek_store)  # a new process: no scheduler, nobody listening
    assert await run_job_step(db0.fetch(uuids["kid"])) is True  # the child ends unheard
    await wait_until(deadline)
    assert unsuspend_jobs() == 3
    woken = [db0.fetch(u) for u in [*sleepers, uuids["parent"]]]
    assert all(job.status == JobStatus.STARTED for job in woken)
    assert db0.fetch(uuids["long"]).status == JobStatus.SUSPENDED
    assert unsuspend_jobs() == 0


# --- futures in reply code -----------------------------------------------------------------------


async def test_future_in_reply_code_resumes_in_that_code(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    from statek.providers import ScriptedProvider, add_provider, remove_provider

    add_provider("step-futures", ScriptedProvider(
        ["x = 1\nm = wait_message().value\nprint('msg', m, x)", "exit('end')"], cycle=False))
    try:
        job = api.submit_new_job(agent, {})
        assert await run_job_step(job, "step-futures") is False  # request
        assert await run_job_step(job, "step-futures") is False  # x = 1, suspend
        assert job.status == JobStatus.SUSPENDED and job.turns == 1
        job.push_user_message("ping")
        assert await run_job_step(job, "step-futures") is False  # print, request
        assert job.console == ["msg ping 1\n"] and job.turns == 2
        assert await run_job_step(job, "step-futures") is True
        assert job.exit_status == "end"
    finally:
        remove_provider("step-futures")


# --- job code that swallows the signal --------------------------------------------------------


async def test_bare_except_does_not_swallow_a_suspension(api: statek.StatekClientAPI,
                                                         agent: statek.Agent) -> None:
    warmup = ("try:\n    v = sleep(0.1).value\nexcept:\n    v = 'swallowed'\n"
              "print(v == 'swallowed')\nexit(v)")
    job = api.submit_new_job(agent, {}, warmup_code=warmup)
    assert await run_job_step(job) is False
    assert job.status == JobStatus.SUSPENDED and job.console == []
    await wait_until(job.awaiting.deadline)
    assert await run_job_step(job) is True
    assert job.console == ["False\n"]
    assert isinstance(job.exit_status, float)


async def test_bare_except_does_not_swallow_exit(api: statek.StatekClientAPI,
                                                 agent: statek.Agent) -> None:
    warmup = ("try:\n    exit('first')\nexcept BaseException:\n    print('caught')\n"
              "exit('second')")
    job = api.submit_new_job(agent, {}, warmup_code=warmup)
    assert await run_job_step(job) is True
    assert job.exit_status == "first"

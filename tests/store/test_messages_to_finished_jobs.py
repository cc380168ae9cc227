"""Messages to jobs that have ended, through the worker loop.

The rule (docstring of `Job.push_user_message`): a message re-opens a DONE job and the result
it had finished with moves to `job.previous_results`; a cancelled job never runs again, and a
message meeting one becomes a dead letter of its queue (or, pushed directly, an error).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.errors import IllegalTransitionError, ProviderError
from statek.executors.utils import run_job_step, run_jobs_loop
from statek.models import inbox as stored_inbox
from statek.models import past_outcomes
from statek.models.containers import plain_copy
from statek.models.status import JobStatus
from statek.providers import ScriptedProvider, add_provider, remove_provider
from statek.store import transition
from tests.store.test_queue_cross_prefix import kernels  # noqa: F401
from tests.support.reopen import reopen
from tests.support.scripted_answers import answers_in_order
from tests.support.speedups_fixture import sched_impl  # noqa: F401


@pytest.fixture
def scripted() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider(["exit('the model answered')"], record=True)
    add_provider("scripted", provider)
    yield provider
    remove_provider("scripted")


async def test_message_queued_before_a_cancel_is_a_dead_letter(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider, caplog: pytest.LogCaptureFixture) -> None:
    job = api.submit_new_job(agent)  # no warmup: its first step would call the model
    api.push_message(job, "are you there?")
    assert api.cancel_job(job) is True
    with caplog.at_level(logging.WARNING, logger="statek.queues"):
        stats = await run_jobs_loop(4, "scripted", queue_prefixes=["test"],
                                    auto_terminate=True)
    assert scripted.calls == 0 and stats.steps_done == 0
    assert job.status == JobStatus.DONE and job.cancelled
    assert job.exit_status is None and job.error == "cancelled"
    assert job.messages == [] and job.previous_results == []
    queue = statek.StatekPushQueue()
    (letter,) = list(queue.dead_letters)
    assert letter["kind"] == "message" and letter["target"] == job.uuid
    assert letter["item"] == "are you there?" and "cancelled" in letter["reason"]
    assert queue.message_count() == 0
    assert any(job.uuid in r.getMessage() and "cancelled" in r.getMessage()
               for r in caplog.records)


async def test_cancelled_suspended_job_stays_cancelled(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider) -> None:
    waiter = api.submit_new_job(agent, warmup_code="exit(wait_message().value)")
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert waiter.status == JobStatus.SUSPENDED
    statek.StatekPushQueue().push_message(waiter, "wake up")
    waiter.cancel("no longer needed")
    db0.commit()
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert waiter.error == "no longer needed" and waiter.exit_status is None
    assert waiter.status == JobStatus.DONE
    assert scripted.calls == 0 and waiter.messages == []
    (letter,) = list(statek.StatekPushQueue().dead_letters)
    assert letter["item"] == "wake up"


def test_pushing_to_a_cancelled_job_is_refused(api: statek.StatekClientAPI,
                                               agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    api.cancel_job(job)
    with pytest.raises(IllegalTransitionError, match=f"{job.uuid} was cancelled"):
        api.push_message(job.uuid, "hello?")
    with pytest.raises(IllegalTransitionError, match="takes no messages"):
        job.push_user_message("hello?")
    assert statek.StatekPushQueue().message_count() == 0 and job.messages == []


async def test_message_reopens_done_job_keeping_its_result(
        api: statek.StatekClientAPI, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider) -> None:
    agent = statek.Agent("finisher")
    job = api.submit_new_job(agent, warmup_code="exit({'answer': 41})")
    failed = api.submit_new_job(agent, warmup_code="exit(1 / 0)")
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert dict(job.exit_status) == {"answer": 41} and failed.error is not None
    first_error = failed.error
    api.push_message(job, "one more time")
    api.push_message(failed, "try again")
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    for reopened in (job, failed):
        assert reopened.exit_status == "the model answered" and reopened.error is None
        assert reopened.status == JobStatus.DONE
    (before,) = job.previous_results
    assert dict(before["exit_status"]) == {"answer": 41} and before["error"] is None
    assert before["finished_at"] <= before["reopened_at"] <= job.finished_at
    (failure,) = failed.previous_results
    assert failure["error"] == first_error
    assert scripted.calls == 2
    assert "Message: one more time" in scripted.requests[0].messages[-1].content


def test_every_earlier_outcome_is_kept_in_order_across_stored_forms(
        api: statek.StatekClientAPI, agent: statek.Agent, db_root: Path) -> None:
    """A job re-opened more times than the string form holds, with a dict exit status in
    the middle: every outcome reads back in order, also from a store opened again."""
    job = api.submit_new_job(agent)
    statuses: list[Any] = ["text", 7, 2.5, None, True]
    statuses += [f"round {n}" for n in range(past_outcomes.MAX_PACKED)]
    statuses += [{"answer": [41, "x"]}, "after the dict"]
    forms = []
    for n, status in enumerate(statuses):
        with transition():
            job.finish(status, f"error {n}" if n % 3 == 0 else None)
            job.apply_messages([f"message {n}"])
        forms.append(type(job.past_results) is str)
    # the string form until the bound, a list after it
    packed = past_outcomes.MAX_PACKED
    assert forms == [True] * packed + [False] * (len(statuses) - packed)
    uuid = job.uuid
    del job
    reopen(db_root, "test")
    job = db0.fetch(uuid)
    earlier = job.previous_results
    assert [plain_copy(r["exit_status"]) for r in earlier] == statuses
    assert [type(r["exit_status"]) for r in earlier[:5]] == [str, int, float, type(None), bool]
    assert [r["error"] for r in earlier] == [
        f"error {n}" if n % 3 == 0 else None for n in range(len(statuses))]
    stamps = [(r["finished_at"], r["reopened_at"]) for r in earlier]
    assert all(done <= reopened for done, reopened in stamps)
    assert [s[1] for s in stamps] == sorted(s[1] for s in stamps)
    assert len(job.messages) == len(statuses)


async def test_message_to_a_uuid_that_is_no_job_is_a_dead_letter(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider) -> None:
    queue = statek.StatekPushQueue()
    queue.push_message(db0.uuid(agent), "for an agent?")
    job = api.submit_new_job(agent, warmup_code="exit(wait_message().value)")
    api.push_message(job, "for the job")
    stats = await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == "for the job" and stats.messages_delivered == 1
    (letter,) = list(queue.dead_letters)
    assert letter["item"] == "for an agent?" and "names a Agent, not a job" in letter["reason"]


async def test_a_drain_names_the_jobs_it_reopened_in_one_line(
        api: statek.StatekClientAPI, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider, caplog: pytest.LogCaptureFixture) -> None:
    """Seven finished jobs re-opened by one drain: one INFO line with the count and five of
    them; each job's own line at DEBUG (a line per job made a drain mostly log writing)."""
    agent = statek.Agent("finisher")
    jobs = [api.submit_new_job(agent, warmup_code=f"exit({i})") for i in range(7)]
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert all(j.status == JobStatus.DONE for j in jobs)
    statek.StatekPushQueue().push_messages([(j, "again") for j in jobs])
    db0.commit()
    with caplog.at_level(logging.DEBUG, logger="statek"):
        await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    assert all(len(j.previous_results) == 1 for j in jobs)
    summary = [r for r in caplog.records
               if r.name == "statek.queues" and "re-opened" in r.getMessage()]
    (line,) = summary
    assert line.levelno == logging.INFO
    text = line.getMessage()
    assert text.startswith("7 finished job(s) re-opened by queued messages")
    assert sum(j.uuid in text for j in jobs) == 5 and "and 2 more" in text
    per_job = [r for r in caplog.records
               if r.name == "statek.jobs" and "re-opened by a message" in r.getMessage()]
    assert sorted(r.getMessage().split()[1] for r in per_job) == sorted(j.uuid for j in jobs)
    assert {r.levelno for r in per_job} == {logging.DEBUG}


async def test_a_direct_message_reopening_a_job_logs_at_info(
        api: statek.StatekClientAPI, kernels: ModuleType,  # noqa: F811
        scripted: ScriptedProvider, caplog: pytest.LogCaptureFixture) -> None:
    job = api.submit_new_job(statek.Agent("finisher"), warmup_code="exit('first')")
    await run_jobs_loop(4, "scripted", queue_prefixes=["test"], auto_terminate=True)
    with caplog.at_level(logging.INFO, logger="statek.jobs"):
        job.push_user_message("again")
    (line,) = [r for r in caplog.records if "re-opened by a message" in r.getMessage()]
    assert line.levelno == logging.INFO and job.uuid in line.getMessage()
    assert "'first'" in line.getMessage()



def test_the_inbox_keeps_every_message_in_order_across_stored_forms(
        api: statek.StatekClientAPI, agent: statek.Agent, db_root: Path) -> None:
    """Scalars delivered a few at a time (the string head) past its bound, then a dict (in
    the tail list): every message reads back in order and of its type, is taken one by one
    across the two, and reads the same from a store opened again."""
    job = api.submit_new_job(agent)
    sent: list[Any] = []
    heads = []
    while job.inbox_more is None:
        start = len(sent)
        batch: list[Any] = [f"m{n}" if n % 4 else n for n in range(start, start + 7)]
        batch[0] = start + 0.5 if start % 2 else True
        with transition():
            job.apply_messages(batch)
        sent += batch
        heads.append(job.inbox)
    with transition():
        job.apply_messages([{"text": "a dict"}])
    sent.append({"text": "a dict"})
    assert len(heads) > 10 and all(len(h) <= stored_inbox.MAX_HEAD_CHARS for h in heads)
    assert heads[-1] == heads[-2] == job.inbox  # a head with a tail is not written again
    in_head = len(sent) - len(job.inbox_more)
    with transition():  # across the head and the tail
        taken = [job.take_message() for _ in range(in_head + 3)]
    assert taken == sent[:in_head + 3]
    assert [type(m) for m in taken] == [type(m) for m in sent[:in_head + 3]]
    assert job.unread_messages == len(sent) - in_head - 3
    uuid = job.uuid
    del job
    reopen(db_root, "test")
    job = db0.fetch(uuid)
    got = [plain_copy(m) for m in job.messages]
    assert got == sent and [type(m) for m in got] == [type(m) for m in sent]
    assert job.unread_messages == len(sent) - in_head - 3


def test_a_dict_first_makes_the_whole_inbox_a_list(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    with transition():
        job.apply_messages([{"a": 1}, "then text"])
        job.apply_messages(["more"])
    assert type(job.inbox) is not str and job.inbox_more is None
    assert [plain_copy(m) for m in job.messages] == [{"a": 1}, "then text", "more"]


@pytest.mark.parametrize("prose", [0, 3000], ids=["inline log", "list log"])
async def test_a_reopened_job_runs_each_reply_once_whatever_its_log_form(
        api: statek.StatekClientAPI, prose: int) -> None:
    """A re-open marks every turn so far as run; with a log long enough to be a list it
    leaves the count to the job's next step (counting reads every line). Either way the
    reply the job finished in is not run again, and each new reply runs once."""
    replies = [f"{'words ' * (prose // 6)}\n```python\nexit('{name}')\n```"
               for name in ("first", "second", "third")]
    provider = ScriptedProvider(replies, cycle=False, record=True)
    add_provider("replies", provider)
    try:
        job = api.submit_new_job(statek.Agent("talker"))
        await run_jobs_loop(4, "replies", queue_prefixes=["test"], auto_terminate=True)
        assert job.exit_status == "first"
        list_logs = []
        for expected, calls in (("second", 2), ("third", 3)):
            list_logs.append(type(job.chat) is not str)
            job.push_user_message(f"now {expected}")  # re-opened here; the queue: below
            assert job.status == JobStatus.STARTED and job.pending_code is None
            await run_jobs_loop(4, "replies", queue_prefixes=["test"], auto_terminate=True)
            assert job.exit_status == expected and len(provider.requests) == calls
        # a long first line stays inline; the second turn moves a long log to a list
        assert list_logs == [False, prose > 0]
    finally:
        remove_provider("replies")


async def test_a_job_ended_by_failures_in_a_row_gets_a_fresh_count_when_reopened(
        api: statek.StatekClientAPI) -> None:
    """A job that ended after 3 failed model calls in a row and is re-opened by a message
    starts counting again: its next failure is retried, not the end of it (it was ended at
    once, "4 failures in a row", found by a new user's trial)."""
    add_provider("wobbly", ScriptedProvider(answers_in_order(
        [ProviderError("down")] * 4 + ["exit('recovered')"])))
    try:
        job = api.submit_new_job(statek.Agent("wobbler"))
        assert [await run_job_step(job, "wobbly") for _ in range(3)] == [False, False, True]
        assert "3 failures in a row" in (job.error or "")
        job.push_user_message("once more")  # as the worker's drain applies it
        assert await run_job_step(job, "wobbly") is False  # the 4th failure: retried
        assert job.status != JobStatus.DONE and job.provider_failures == 1
        assert await run_job_step(job, "wobbly") is False  # the reply: its code next
        assert await run_job_step(job, "wobbly") is True
        assert job.exit_status == "recovered" and job.error is None
    finally:
        remove_provider("wobbly")


async def test_a_job_ended_by_exceptions_in_a_row_gets_a_fresh_count_when_reopened(
        api: statek.StatekClientAPI) -> None:
    job = api.submit_new_job(statek.Agent("raiser"), warmup_code="1 / 0")
    assert await run_job_step(job) is True
    assert job.consecutive_exceptions == 1 and job.exceptions == 1
    job.push_user_message("again")
    assert job.status == JobStatus.STARTED
    assert job.consecutive_exceptions == 0 and job.exceptions == 1  # the total still counts


async def test_a_message_that_came_during_the_last_model_call_reopens_the_job(
        api: statek.StatekClientAPI) -> None:
    """A message pushed while the model was writing the reply that ends the job was seen by
    nothing: the job re-opens at its end, as for a message a moment later, and the model's
    next turn shows it (it stayed unread for good: found by a new user's trial)."""
    job_box: list[Any] = []

    def reply(request: Any) -> str:
        if len(job_box) == 1:  # the first call: a user writes meanwhile
            job_box[0].push_user_message("pushed mid-flight")
            job_box.append("pushed")
            return "exit('fine')"
        assert "Message: pushed mid-flight" in request.messages[-1].content
        return "exit('saw it')"

    add_provider("chatty", ScriptedProvider(reply))
    try:
        job = api.submit_new_job(statek.Agent("talker"))
        job_box.append(job)
        stats = await run_jobs_loop(4, "chatty", queue_prefixes=["test"],
                                    auto_terminate=True)
    finally:
        remove_provider("chatty")
    assert job.status == JobStatus.DONE and job.exit_status == "saw it"
    assert job.unread_messages == 0 and job.error is None
    (first,) = job.previous_results
    assert first["exit_status"] == "fine"
    assert stats.jobs_completed == 1  # one completion counted, at the real end


async def test_a_job_ended_by_a_limit_says_which_messages_it_never_read(
        api: statek.StatekClientAPI) -> None:
    job_box: list[Any] = []

    def reply(request: Any) -> str:
        job_box[0].push_user_message("are you there?")
        return "x = 1"

    add_provider("busy", ScriptedProvider(reply))
    try:
        job = api.submit_new_job(statek.Agent("busy"), max_turns=1)
        job_box.append(job)
        await run_jobs_loop(4, "busy", queue_prefixes=["test"], auto_terminate=True)
    finally:
        remove_provider("busy")
    assert job.status == JobStatus.DONE and not job.previous_results  # not re-opened
    assert job.error == ("harness: 1 turns reached max_turns=1 (1 message(s) pushed to it "
                         "were not read)")

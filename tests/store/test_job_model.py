from __future__ import annotations

import itertools

import dbzero as db0
import pytest

import statek
from statek import signals
from statek.errors import IllegalTransitionError
from statek.models.future import MESSAGE, Future
from statek.models.status import LEGAL_MOVES, STATUS_NAMES, JobStatus

NAMES = ["READY", "WARMING_UP", "STARTED", "SUSPENDED", "DONE"]


def _job_in(api: statek.StatekClientAPI, agent: statek.Agent, status: str) -> statek.Job:
    """A job driven to `status` through legal moves only."""
    job = api.submit_new_job(agent)
    path = {"READY": [], "WARMING_UP": ["WARMING_UP"], "STARTED": ["STARTED"],
            "SUSPENDED": ["SUSPENDED"], "DONE": ["DONE"]}[status]
    for step in path:
        job.set_status(getattr(JobStatus, step))
    return job


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(NAMES, 2)))
def test_state_machine(api: statek.StatekClientAPI, agent: statek.Agent, src: str,
                       dst: str) -> None:
    job = _job_in(api, agent, src)
    if STATUS_NAMES.index(dst) in LEGAL_MOVES[STATUS_NAMES.index(src)]:
        job.set_status(getattr(JobStatus, dst))
        assert str(job.status) == dst
    else:
        with pytest.raises(IllegalTransitionError, match=f"{src} -> {dst}"):
            job.set_status(getattr(JobStatus, dst))
        assert str(job.status) == src


def test_status_is_an_index_query(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    jobs = api.submit_new_jobs_batch(agent, [{"i": i} for i in range(5)])
    jobs[0].set_status(JobStatus.STARTED)
    jobs[1].set_status(JobStatus.DONE)
    assert len(db0.find(statek.Job, JobStatus.READY)) == 3
    assert len(db0.find(statek.Job, JobStatus.STARTED)) == 1
    assert {db0.uuid(j) for j in db0.find(statek.Job, JobStatus.DONE)} == {jobs[1].uuid}


def test_locals_console_and_log(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"a": 1, "b": [1, 2]})
    assert dict(job.locals) == {"a": 1, "b": [1, 2]}
    job.bind_locals({"c": "x", "a": 2}, deleted=("b",))
    assert dict(job.locals) == {"a": 2, "c": "x"}
    job.bind_locals({"d": 4})
    assert dict(job.locals) == {"a": 2, "c": "x", "d": 4}
    assert job.console == []
    job.write_console("hello\n")
    job.write_console("world\n")
    assert job.console == ["hello\n", "world\n"]
    from statek.models import chatlog

    job.log(chatlog.error("provider down"))
    (entry,) = job.chat_log
    assert (entry["kind"], entry["message"]) == ("error", "provider down")
    with pytest.raises(TypeError):
        job.locals["a"] = 3  # type: ignore[index]


def test_push_user_message_reopens_done_job(api: statek.StatekClientAPI,
                                            agent: statek.Agent) -> None:
    seen: list[str] = []

    class Listener:
        def job_runnable(self, u: str, job: object = None, jobdef: object = None) -> None:
            seen.append(u)

        def job_finished(self, u: str) -> None: ...
        def job_messaged(self, u: str) -> None: ...
        def timer_set(self, u: str, d: float) -> None: ...
        def queue_pushed(self) -> None: ...

    job = api.submit_new_job(agent)
    job.set_status(JobStatus.STARTED)
    job.finish("ok")
    assert job.exit_status == "ok"
    signals.subscribe(Listener())
    job.push_user_message("more please")
    assert str(job.status) == "STARTED"
    assert job.exit_status is None
    assert job.messages == ["more please"] and job.unread_messages == 1
    assert seen == [job.uuid]


def test_push_user_message_wakes_job_suspended_on_message(api: statek.StatekClientAPI,
                                                          agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    job.set_status(JobStatus.STARTED)
    job.set_status(JobStatus.SUSPENDED)
    job.awaiting = Future(MESSAGE, job)
    job.push_user_message({"text": "hi"})
    assert str(job.status) == "STARTED"
    assert job.awaiting.value == {"text": "hi"}
    assert job.unread_messages == 0


def test_message_does_not_wake_job_waiting_on_something_else(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    child = api.submit_new_job(agent)
    job.set_status(JobStatus.STARTED)
    job.set_status(JobStatus.SUSPENDED)
    job.awaiting = Future("job", job, target=child)
    job.push_user_message("hello")
    assert str(job.status) == "SUSPENDED"
    assert job.unread_messages == 1


def test_cancel(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    assert api.cancel_job(job) is True
    assert str(job.status) == "DONE" and job.exit_status is None
    assert job.error == "cancelled" and job.cancelled
    assert api.cancel_job(job.uuid) is False

from __future__ import annotations

import dbzero as db0
import pytest

import statek
from statek.errors import JobNotFoundError, UnstorableValueError
from statek.models.status import JobStatus


def test_submit_new_job(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"question": "why?"}, locale="pl_PL")
    assert isinstance(job, statek.Job)
    assert job.status == JobStatus.READY
    assert job.agent == agent and job.locale == "pl_PL"
    assert dict(job.locals) == {"question": "why?"}
    assert api.get_job(job.uuid) == job


def test_submit_batch(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    jobs = api.submit_new_jobs_batch(agent, [{"i": i} for i in range(25)])
    assert [j.locals["i"] for j in jobs] == list(range(25))
    assert len(db0.find(statek.Job, JobStatus.READY)) == 25
    ids = api.submit_new_job_ids(agent, [None, {"i": 99}])
    assert api.get_job(ids[1]).locals["i"] == 99


@pytest.mark.parametrize(("value", "type_name"), [
    (lambda: 1, "function"),
    (object(), "object"),
    (2**80, "int"),
    (frozenset({1}), "frozenset"),
    ({"nested": [1, {2j}]}, "dict"),
])
def test_unstorable_shared_var_names_key_and_type(api: statek.StatekClientAPI,
                                                  agent: statek.Agent, value: object,
                                                  type_name: str) -> None:
    with pytest.raises(UnstorableValueError) as info:
        api.submit_new_job(agent, {"fine": 1, "bad": value})
    assert "'bad'" in str(info.value) and type_name in str(info.value)
    assert len(db0.find(statek.Job)) == 0


def test_batch_with_one_bad_mapping_creates_nothing(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    batch = [{"i": 1}, {"i": 2}, {"i": object()}]
    with pytest.raises(UnstorableValueError, match=r"shared_vars_batch\[2\]\['i'\]"):
        api.submit_new_jobs_batch(agent, batch)
    assert len(db0.find(statek.Job)) == 0


def test_get_job_unknown(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    with pytest.raises(JobNotFoundError, match="no job"):
        api.get_job("AAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(JobNotFoundError, match="not a Job"):
        api.get_job(db0.uuid(agent))


#: a well-formed uuid of a prefix this store does not have: dbzero 0.7.0's `exists` and
#: `fetch` raise RuntimeError ("Prefix: ... not found") for it (found by a new user)
OTHER_STORES_UUID = "MGVLTMKGT7NUFIEBUKWYABAX"


@pytest.mark.parametrize("job_id", [OTHER_STORES_UUID, "88ec2038-5a9d-4c1e-9b7e-3f2a1c0d4e5f",
                                    "AAAAAAAAAAAAAAAAAAAAAAAA", "a\ud800", "x" * 500])
def test_an_id_naming_no_job_here_is_not_found_everywhere(api: statek.StatekClientAPI,
                                                         job_id: str) -> None:
    shown = repr(job_id)[:40]
    with pytest.raises(JobNotFoundError, match="no job with uuid") as got:
        api.get_job(job_id)
    assert shown in str(got.value)
    with pytest.raises(JobNotFoundError, match="no job with uuid"):
        api.push_message(job_id, "x")
    with pytest.raises(JobNotFoundError, match="no job with uuid"):
        api.cancel_job(job_id)
    assert len(statek.StatekPushQueue()) == 0


def test_push_message_and_event_go_to_the_queue(api: statek.StatekClientAPI,
                                                statek_store: str) -> None:
    sup = statek.SupervisedAgent("sup")
    sup.update_warmup_def("exit(ticket)")  # one outside local: the event's
    job = api.submit_new_job(sup)
    assert api.push_message(job, "m1") == 0
    assert api.push_message(job.uuid, "m2") == 1
    assert api.push_event(sup, {"ticket": 7}) == 0
    q = statek.StatekPushQueue()
    assert q.peek_messages(5)[1] == [(job.uuid, "m1"), (job.uuid, "m2")]
    assert q.peek_events(sup, 5)[1] == [{"ticket": 7}]


async def test_an_event_pushed_by_role_or_uuid_becomes_a_job(api: statek.StatekClientAPI,
                                                              statek_store: str) -> None:
    """By role, the event was queued under the role and the worker dead-lettered it ("agent
    does not exist"; found by a new user's trial)."""
    from statek.executors.utils import run_jobs_loop

    one = statek.SupervisedAgent("one")
    one.update_warmup_def("exit(ticket * 10)")
    api.push_event(one, 1)
    api.push_event(db0.uuid(one), 2)
    api.push_event("one", 3)
    stats = await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert sorted(job.exit_status for job in db0.find(statek.Job)) == [10, 20, 30]
    assert stats.jobs_completed == 3
    assert list(statek.StatekPushQueue().dead_letters) == []


def test_an_event_no_job_could_take_is_refused_when_pushed(api: statek.StatekClientAPI,
                                                           statek_store: str) -> None:
    """It was accepted and only dead-lettered by the worker (found by a new user)."""
    plain, blind = statek.Agent("plain"), statek.SupervisedAgent("blind")
    blind.update_warmup_def("exit(1)")  # reads no outside local: nowhere to put the event
    for agent, says in ((plain, "agent 'plain' is not a SupervisedAgent"),
                        ("plain", "agent 'plain' is not a SupervisedAgent"),
                        (blind, "must read exactly one outside local")):
        with pytest.raises(statek.ConfigurationError, match=says):
            api.push_event(agent, {"n": 1})
    q = statek.StatekPushQueue()
    assert q.peek_events(plain, 5)[1] == [] and q.peek_events(blind, 5)[1] == []


def test_contract_import_paths() -> None:
    from statek.agents.agent import Agent, SupervisedAgent
    from statek.statek_client_api import StatekClientAPI
    from statek.statek_push_queue import StatekPushQueue

    assert (Agent, SupervisedAgent) == (statek.Agent, statek.SupervisedAgent)
    assert StatekClientAPI is statek.StatekClientAPI
    assert StatekPushQueue is statek.StatekPushQueue
    assert issubclass(SupervisedAgent, Agent)


def test_an_agent_may_be_given_by_role_or_uuid(api: statek.StatekClientAPI) -> None:
    """The same forms a process feeding a running worker may use (a new user tried a role in
    the worker's own process and got AttributeError: 'str' object has no attribute ...)."""
    agent = statek.Agent("by-name")
    by_role = api.submit_new_job("by-name", {"n": 1})
    by_uuid = api.submit_new_jobs_batch(db0.uuid(agent), [{"n": 2}])[0]
    [by_ids] = api.submit_new_job_ids("by-name", [{"n": 3}])
    jobs = [by_role, by_uuid, api.get_job(by_ids)]
    assert {db0.uuid(job.jobdef.agent) for job in jobs} == {db0.uuid(agent)}
    with pytest.raises(statek.AgentNotFoundError,
                       match=r"no agent with role or uuid 'nobody'.*by-name"):
        api.submit_new_job("nobody")
    twin = statek.Agent("by-name")  # a second agent with that role: ambiguous
    with pytest.raises(statek.AgentNotFoundError,
                       match="2 agents have role 'by-name'") as ambiguous:
        api.submit_new_job("by-name")
    for one in (agent, twin):  # named, so the caller can pick one by uuid
        assert str(db0.uuid(one)) in str(ambiguous.value)


def test_a_warmup_that_is_not_python_is_refused_when_given(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """Each job of it failed in the worker ("warmup failed: SandboxViolation: syntax
    error"); a supervised agent's was misreported as reading no outside local. Refused
    where it is given now, and nothing is made."""
    before = len(db0.find(statek.Job))
    with pytest.raises(ValueError, match=r"^warmup block 2 of 2 is not valid Python: "
                                         r"'\(' was never closed at line 1$"):
        api.submit_new_job(agent, {}, warmup_code="x = 1\n# %%\nexit(x")
    assert len(db0.find(statek.Job)) == before
    sup = statek.SupervisedAgent("strict")
    sup.update_warmup_def("exit(ticket)")
    with pytest.raises(ValueError, match=r"^warmup block 1 of 1 is not valid Python: source "
                                         r"code string cannot contain null bytes"):
        sup.update_warmup_def("exit(ticket)\x00")
    assert sup.warmup_code == "exit(ticket)"  # kept as it was

"""A definition's cached facts: found by the JobDef object for a new job, re-read when the
settings change, and the objects held bounded."""

from __future__ import annotations

import dbzero as db0

import statek
from statek import store, worker_state
from statek.execution.jobdef_facts import definition_info, definition_of
from statek.runtime.scheduler import current_scheduler


def test_a_new_job_of_a_known_definition_is_found_by_object(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    first, second = api.submit_new_jobs_batch(agent, [{"i": 1}, {"i": 2}],
                                              warmup_code="exit(i)")
    state = worker_state.current()
    info = definition_info(first.jobdef, state)
    assert info.uuid == str(db0.uuid(first.jobdef))
    assert info.warmup_blocks == ("exit(i)",)
    assert len(state.jobdef_facts_held) == 1
    assert definition_info(second.jobdef, state) is info  # same JobDef: same facts


def test_new_settings_read_the_facts_again(api: statek.StatekClientAPI,
                                           agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {})
    state = worker_state.current()
    before = definition_info(job.jobdef, state)
    changed = store.settings().model_copy(update={"step_timeout": 7.5})
    after = definition_info(job.jobdef, state, changed)
    assert after is not before
    assert after.limits.step_timeout == 7.5
    assert len(state.jobdef_facts_held) == 1
    assert state.jobdef_facts_held.get(job.jobdef) is after


def test_held_definitions_are_bounded(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    jobs = [api.submit_new_job(agent, {}, temperature=0.1 * n) for n in range(4)]
    state = worker_state.current()
    state.jobdef_facts_held.clear()
    state.jobdef_facts_held.limit = 2
    infos = [definition_info(job.jobdef, state) for job in jobs]
    assert len({info.uuid for info in infos}) == 4  # four definitions, all read correctly
    assert len(state.jobdef_facts_held) == 2
    assert [definition_info(job.jobdef, state) for job in jobs] == infos


class _NoDefinitionRead:
    """A stand-in job whose `jobdef` must not be read."""

    @property
    def jobdef(self) -> None:
        raise AssertionError("the step read job.jobdef although the scheduler knew it")


def test_a_first_step_finds_the_definition_through_the_scheduler(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    sched = current_scheduler()  # subscribed: it places every job submitted from here on
    (job_uuid,) = api.submit_new_job_ids(agent, [{"i": 1}], warmup_code="exit(i)")
    job = db0.fetch(job_uuid)
    state = worker_state.current()
    cfg = store.settings()
    expected = definition_info(job.jobdef, state, cfg)  # the facts are cached
    assert sched.definition_uuid(job_uuid) == expected.uuid
    assert job_uuid not in state.jobdef_of_job  # no step ran: only the scheduler knows
    assert definition_of(_NoDefinitionRead(), job_uuid, state, cfg) is expected  # type: ignore[arg-type]


def test_a_reused_job_number_gets_the_new_jobs_definition(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    sched = current_scheduler()
    (first,) = api.submit_new_job_ids(agent, [{}], warmup_code="exit(1)")
    (number,) = sched.take(1)
    done = db0.fetch(first)
    api.cancel_job(done)  # DONE: its step's end releases the number
    sched.step_ended(number, done, 0.0)
    assert sched.definition_uuid(first) is None
    other = statek.Agent("other", "You are another worker.")
    (second,) = api.submit_new_job_ids(other, [{}], warmup_code="exit(2)")
    assert sched.jobs.get(second) == number  # the released number, reused
    assert sched.definition_uuid(second) == str(db0.uuid(db0.fetch(second).jobdef))
    assert sched.definition_uuid(second) != str(db0.uuid(done.jobdef))


def test_a_known_definition_without_cached_facts_is_read_from_the_job(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    sched = current_scheduler()
    (job_uuid,) = api.submit_new_job_ids(agent, [{}], warmup_code="exit('x')")
    state = worker_state.current()
    state.jobdef_facts.clear()
    state.jobdef_facts_held.clear()
    assert sched.definition_uuid(job_uuid) is not None
    info = definition_of(db0.fetch(job_uuid), job_uuid, state, store.settings())
    assert info.warmup_blocks == ("exit('x')",)
    assert state.jobdef_of_job[job_uuid] == info.uuid == sched.definition_uuid(job_uuid)

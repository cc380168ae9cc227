"""A definition's cached facts: found by the JobDef object for a new job, re-read when the
settings change, and the objects held bounded."""

from __future__ import annotations

import dbzero as db0

import statek
from statek import store, worker_state
from statek.execution.jobdef_facts import definition_info


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

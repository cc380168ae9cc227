"""JobDef facts: what a step needs from a job definition, read once per process.

(Not to be confused with a job's `definitions`: the `def`/`class`/`import` statements the
interpreter remembers and replays.) The cache lives on the worker's state owner
(`statek.worker_state`).

JobDefs never change once created (an identical definition is reused, a different one is a
new JobDef), so their warmup blocks, parameters, limits and tool names are read from dbzero
once per process rather than once per step (each such read costs 2-8 µs: a fleet of 100k
jobs sharing one definition would pay it 100k times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import store, worker_state
from statek.execution import harness
from statek.execution.job_functions import read_only_params

if TYPE_CHECKING:
    from statek.models.agent import Agent
    from statek.models.job import Job
    from statek.models.jobdef import JobDef
    from statek.settings import StatekSettings
    from statek.worker_state import WorkerState

CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class DefinitionInfo:
    uuid: str
    warmup_blocks: tuple[str, ...]
    params: dict[str, Any]
    params_view: Any  # what job code sees as `params` (read-only, shared by the jobs)
    metadata: dict[str, Any]
    agent: Agent  # the Agent memo object (its prompt is read per request: it may be edited)
    tool_names: tuple[str, ...]
    limits: harness.Limits


def definition_info(jobdef: JobDef, state: WorkerState | None = None,
                    cfg: StatekSettings | None = None) -> DefinitionInfo:
    """The cached facts of `jobdef` (limits follow the settings bound by `statek.init`).
    A step passes its owner and settings: it has looked both up already."""
    if cfg is None:
        cfg = store.settings()
    if state is None:
        state = worker_state.current()
    cache, held = state.jobdef_facts, state.jobdef_facts_held
    if state.jobdef_facts_settings is not cfg:  # new settings: limits may differ
        cache.clear()
        held.clear()
        state.jobdef_facts_settings = cfg
    found = held.get(jobdef)
    if found is not None:
        return found
    key = str(db0.uuid(jobdef))
    info = cache.get(key)
    if info is None:
        info = _read_facts(jobdef, key, cfg)
        cache[key] = info
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    held.put(jobdef, info)
    return info


def _read_facts(jobdef: JobDef, key: str, cfg: StatekSettings) -> DefinitionInfo:
    params = db0.load(jobdef.params)
    return DefinitionInfo(
        uuid=key,
        warmup_blocks=tuple(jobdef.warmup_blocks),
        params=params,
        params_view=read_only_params(params),
        metadata=db0.load(jobdef.metadata),
        agent=jobdef.agent,
        tool_names=tuple(jobdef.agent.tool_names),
        limits=harness.Limits.of(cfg, params),
    )


def definition_of(job: Job, job_uuid: str, state: WorkerState,
                  cfg: StatekSettings) -> DefinitionInfo:
    """`definition_info(job.jobdef)`, without reading the reference once the job is known
    (~6 µs per read; a job's definition never changes): from the per-job `jobdef_of_job`
    cache after a first step, and for a first step from the worker's scheduler, which learnt
    the definition when it queued the job in its agent's lane."""
    of_job = state.jobdef_of_job
    key = of_job.get(job_uuid)
    if key is None and state.scheduler is not None:
        key = state.scheduler.definition_uuid(job_uuid)
    if key is not None:
        info = state.jobdef_facts.get(key)
        if info is not None and state.jobdef_facts_settings is cfg:
            return info
    info = definition_info(job.jobdef, state, cfg)
    of_job[job_uuid] = info.uuid
    if len(of_job) > CACHE_SIZE * 8:
        of_job.popitem(last=False)
    return info

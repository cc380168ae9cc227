"""Per-process cache of what a step needs from a job definition.

JobDefs never change once created (an identical definition is reused, a different one is a
new JobDef), so their warmup blocks, parameters, limits and tool names are read from dbzero
once per process rather than once per step (each such read costs 2-8 µs: a fleet of 100k
jobs sharing one definition would pay it 100k times).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import dbzero as db0

from statek import job_caches, store
from statek.execution import harness
from statek.execution.job_functions import read_only_params

CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class DefinitionInfo:
    uuid: str
    warmup_blocks: tuple[str, ...]
    params: dict[str, Any]
    params_view: Any  # what job code sees as `params` (read-only, shared by the jobs)
    metadata: dict[str, Any]
    agent: Any  # the Agent memo object (its prompt is read per request: it may be edited)
    tool_names: tuple[str, ...]
    limits: harness.Limits


_cache: OrderedDict[str, DefinitionInfo] = OrderedDict()
_settings_seen: list[Any] = [None]


def definition_info(jobdef: Any) -> DefinitionInfo:
    """The cached facts of `jobdef` (limits follow the settings bound by `statek.init`)."""
    cfg = store.settings()
    if _settings_seen[0] is not cfg:  # new settings: limits may differ
        _cache.clear()
        _settings_seen[0] = cfg
    key = str(db0.uuid(jobdef))
    info = _cache.get(key)
    if info is not None:
        return info
    params = db0.load(jobdef.params)
    info = DefinitionInfo(
        uuid=key,
        warmup_blocks=tuple(jobdef.warmup_blocks),
        params=params,
        params_view=read_only_params(params),
        metadata=db0.load(jobdef.metadata),
        agent=jobdef.agent,
        tool_names=tuple(jobdef.agent.tool_names),
        limits=harness.Limits.of(cfg, params),
    )
    _cache[key] = info
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return info


#: job uuid -> its definition's uuid (a job's definition never changes; reading the
#: reference costs ~6 µs per step).
_of_job = job_caches.register("definitions.of_job", OrderedDict[str, str]())


def definition_of(job: Any, job_uuid: str) -> DefinitionInfo:
    """`definition_info(job.jobdef)`, without reading the reference once the job is known."""
    key = _of_job.get(job_uuid)
    if key is not None:
        info = _cache.get(key)
        if info is not None and _settings_seen[0] is store.settings():
            return info
    info = definition_info(job.jobdef)
    _of_job[job_uuid] = info.uuid
    if len(_of_job) > CACHE_SIZE * 8:
        _of_job.popitem(last=False)
    return info


def forget_definitions() -> None:
    _cache.clear()
    _of_job.clear()


store.on_close(forget_definitions)

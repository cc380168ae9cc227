"""Agentic loops: keep a supervised agent's jobs flowing from its task queue.

`run_agentic_loop` serves one agent; `run_agentic_fleet` gives each `AgentLoopDef` its own
start function and shares one `run_jobs_loop` between them, splitting free slots fairly so a
busy agent cannot starve the others (the ready queue is also round-robin across agents).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dbzero as db0

from statek.models.agent import Agent
from statek.models.status import READY, WARMING_UP
from statek.models.submit import create_job, jobdef_for
from statek.runtime.loop import run_jobs_loop
from statek.runtime.queues import process_agent_events
from statek.runtime.stats import LoopStats

log = logging.getLogger("statek.agentic")


@dataclass
class AgentLoopDef:
    """One agent of a fleet: its warmup and how many tasks wait for it."""

    agent: Agent
    warmup_code: str | Sequence[str] | None
    task_queue_size_func: Callable[[], int]


class _AgentStarter:
    """Starts jobs for one agent: one per waiting task, never more than the free slots.

    Jobs it started that have not left READY/WARMING_UP yet still count as taking a task, so
    a slow warmup does not make it start a second job for the same task."""

    def __init__(self, loop_def: AgentLoopDef, queue_prefixes: Sequence[str | int]) -> None:
        self.loop_def = loop_def
        self.queue_prefixes = queue_prefixes
        agent = loop_def.agent
        if loop_def.warmup_code is not None and hasattr(agent, "update_warmup_def"):
            agent.update_warmup_def(loop_def.warmup_code)
        params = {} if loop_def.warmup_code is None else {"warmup_code": loop_def.warmup_code}
        self.jobdef = jobdef_for(agent, params)
        self.pending: list[str] = []

    def _still_starting(self) -> int:
        alive = []
        for job_uuid in self.pending:
            job = db0.fetch(job_uuid)
            if job.state == READY or job.state == WARMING_UP:
                alive.append(job_uuid)
        self.pending = alive
        return len(alive)

    def __call__(self, capacity: int) -> int:
        if capacity <= 0:
            return 0
        started = process_agent_events([self.loop_def.agent], capacity,
                                       queue_prefixes=self.queue_prefixes)
        capacity -= started
        try:
            waiting = int(self.loop_def.task_queue_size_func())
        except Exception:
            log.exception("task_queue_size_func of agent %r raised",
                          getattr(self.loop_def.agent, "role", "?"))
            return started
        wanted = min(capacity, waiting - self._still_starting())
        for _ in range(max(0, wanted)):
            job = create_job(self.jobdef, None, None)
            self.pending.append(db0.uuid(job))
        return started + max(0, wanted)


def fair_split(capacity: int, parts: int, turn: int) -> list[int]:
    """Split `capacity` slots over `parts` starters; the remainder rotates with `turn`."""
    base, extra = divmod(capacity, parts)
    return [base + (1 if (i - turn) % parts < extra else 0) for i in range(parts)]


class _FleetStarter:
    def __init__(self, starters: list[_AgentStarter]) -> None:
        self.starters = starters
        self.turn = 0

    def __call__(self, capacity: int) -> int:
        shares = fair_split(capacity, len(self.starters), self.turn)
        self.turn += 1
        started = 0
        for starter, share in zip(self.starters, shares, strict=True):
            started += starter(share)
        return started


async def run_agentic_loop(agent: Agent, warmup_code: str | Sequence[str] | None,
                           task_queue_size_func: Callable[[], int],
                           queue_prefixes: Sequence[str | int], max_concurrency: int = 100,
                           provider: str | None = None,
                           auto_terminate: bool = False) -> LoopStats:
    """Run one supervised agent: jobs start from its queued tasks and events."""
    starter = _AgentStarter(AgentLoopDef(agent, warmup_code, task_queue_size_func),
                            queue_prefixes)
    return await run_jobs_loop(max_concurrency, provider, queue_prefixes=queue_prefixes,
                               start_jobs_func=starter, auto_terminate=auto_terminate)


async def run_agentic_fleet(agent_loop_defs: Sequence[AgentLoopDef],
                            queue_prefixes: Sequence[str | int], max_concurrency: int = 100,
                            provider: str | None = None,
                            auto_terminate: bool = False) -> LoopStats:
    """Run several agents in one worker, sharing its capacity fairly."""
    if not agent_loop_defs:
        raise ValueError("run_agentic_fleet needs at least one AgentLoopDef")
    fleet = _FleetStarter([_AgentStarter(d, queue_prefixes) for d in agent_loop_defs])
    return await run_jobs_loop(max_concurrency, provider, queue_prefixes=queue_prefixes,
                               start_jobs_func=fleet, auto_terminate=auto_terminate)

"""`run_agentic_fleet`: two supervised agents, one per provider, take tasks from the
application's queues in their warmups and finish them with the model."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.executors.utils import AgentLoopDef, run_agentic_fleet
from tests.e2e import tools
from tests.e2e.conftest import Servers
from tests.e2e.helpers import rule, run_app
from tests.e2e.scenarios import (
    Provider,
    anthropic,
    assert_done,
    assert_no_unmatched,
    load,
    openai,
)

TASKS_PER_AGENT = 3
MAX_CONCURRENCY = 2  # fewer slots than tasks, and every job takes two steps


@dataclass(frozen=True)
class FleetFlow:
    """Warmup takes a task; turn 1 works on it; turn 2 exits with [task, result]."""

    marker: str
    provider: Provider
    queue: str

    @property
    def system_prompt(self) -> str:
        return f"You are fleet agent {self.marker}."

    @property
    def warmup(self) -> str:
        return f"task = e2e_take_task({self.queue!r})\nprint('took', task)"

    FIRST_CODE = "result = len(task) * 7\nprint('fleet', 'result', result)"
    LAST_CODE = "exit([task, result])"

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        return [
            rule(f"{self.marker}-finish", self.LAST_CODE, contains="fleet result",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", self.FIRST_CODE, contains=self.system_prompt,
                 model=p.model, headers=p.headers),
        ]

    def loop_def(self) -> AgentLoopDef:
        agent = statek.SupervisedAgent(self.marker, self.system_prompt,
                                       tools=[tools.e2e_take_task],
                                       metadata=self.provider.metadata)
        queue = tools.TASK_QUEUES[self.queue]
        return AgentLoopDef(agent, self.warmup, lambda: len(queue))

    def tasks(self) -> list[str]:
        return [f"{self.queue}-{i}" for i in range(TASKS_PER_AGENT)]


@pytest.fixture
def task_queues() -> Iterator[dict[str, deque[str]]]:
    tools.TASK_QUEUES.clear()
    yield tools.TASK_QUEUES
    tools.TASK_QUEUES.clear()


def _jobs_of(role: str) -> list[Any]:
    return [job for job in db0.find(statek.Job) if job.jobdef.agent.role == role]


def test_fleet_of_two_providers_drains_the_task_queues(
        servers: Servers, loop_kind: str, statek_store: str,
        task_queues: dict[str, deque[str]]) -> None:
    flows = [FleetFlow("SCN-FLEET-GPT", openai(), "qa"),
             FleetFlow("SCN-FLEET-CLAUDE", anthropic(), "qb")]
    for flow in flows:
        task_queues[flow.queue] = deque(flow.tasks())
    before_openai = load(servers.openai, flows[0].rules())
    before_anthropic = load(servers.anthropic, flows[1].rules())
    statek.init(servers.settings(loop_kind == "uvloop"))
    defs = [flow.loop_def() for flow in flows]

    stats = run_app(loop_kind, lambda: run_agentic_fleet(
        defs, [statek_store], max_concurrency=MAX_CONCURRENCY, auto_terminate=True))

    assert all(not queue for queue in task_queues.values()), task_queues
    for flow in flows:
        jobs = _jobs_of(flow.marker)
        assert len(jobs) == TASKS_PER_AGENT, [j.console for j in jobs]
        for job in jobs:
            task = job.locals["task"]
            assert_done(job, [task, len(task) * 7])
            assert job.console == [f"took {task}\n", f"fleet result {len(task) * 7}\n"]
        assert sorted(job.locals["task"] for job in jobs) == flow.tasks()
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert stats.jobs_started_by_func == stats.jobs_completed == 2 * TASKS_PER_AGENT
    assert stats.steps_failed == 0 and stats.max_in_flight <= MAX_CONCURRENCY

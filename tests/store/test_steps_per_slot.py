"""A job whose step leaves it runnable keeps its slot for its next step (`keeps_slot`): up to
`STEPS_PER_SLOT` in a row, and only while no other agent's jobs wait for a slot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import statek
from statek import signals
from statek.executors.utils import run_jobs_loop
from statek.providers import ScriptedProvider, add_provider, remove_provider
from statek.runtime import loop as jobs_loop


def _turns(count: int) -> Any:
    """Replies that mark `count` turns of code, then exit: a job of count + 1 model calls."""

    def reply(request: Any) -> str:
        done = sum(1 for m in request.messages if m.role == "assistant")
        return "mark(who, i)" if done < count else "exit(i)"

    return reply


@pytest.fixture
def marks() -> list[tuple[str, int]]:
    """What job code marked, in order (the `mark` tool, registered for this test)."""
    order: list[tuple[str, int]] = []

    @statek.tool
    def mark(who: str, i: int) -> None:
        order.append((who, i))

    return order


@pytest.fixture
def scripted_turns() -> Iterator[Any]:
    def use(count: int) -> None:
        add_provider("scripted", ScriptedProvider(_turns(count)))

    yield use
    remove_provider("scripted")


def _agent(role: str) -> statek.Agent:
    agent = statek.Agent(role)
    agent.tool_names = ("mark",)
    return agent


def _runs(seen: list[tuple[str, int]]) -> list[int]:
    """Lengths of the runs of consecutive marks by one job."""
    lengths: list[int] = []
    for k, item in enumerate(seen):
        if k and seen[k - 1] == item:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


async def test_a_started_job_runs_its_steps_in_a_row(api: statek.StatekClientAPI,
                                                    marks: list[tuple[str, int]],
                                                    scripted_turns: Any) -> None:
    scripted_turns(3)
    agent = _agent("solo")
    api.submit_new_job_ids(agent, [{"who": "solo", "i": i} for i in range(4)])
    stats = await run_jobs_loop(1, queue_prefixes=["test"], auto_terminate=True)
    # one slot: each job's three marked turns come together
    assert _runs(marks) == [3] * 4
    assert sorted(marks) == [("solo", i) for i in range(4) for _ in range(3)]
    assert stats.jobs_completed == 4
    assert stats.steps_done == 4 * 5  # a first model call, three marked turns, the exit


async def test_a_long_job_gives_its_slot_back_after_steps_per_slot(
        api: statek.StatekClientAPI, marks: list[tuple[str, int]],
        scripted_turns: Any) -> None:
    scripted_turns(3 * jobs_loop.STEPS_PER_SLOT)
    agent = _agent("long")
    api.submit_new_job_ids(agent, [{"who": "long", "i": i} for i in range(2)])
    await run_jobs_loop(1, queue_prefixes=["test"], auto_terminate=True)
    runs = _runs(marks)
    assert max(runs) <= jobs_loop.STEPS_PER_SLOT
    assert len(runs) >= 4  # the two jobs took turns in the one slot
    assert sorted(marks) == sorted(
        [("long", i) for i in range(2) for _ in range(3 * jobs_loop.STEPS_PER_SLOT)])


async def test_another_agents_waiting_jobs_keep_their_turn(api: statek.StatekClientAPI,
                                                           marks: list[tuple[str, int]],
                                                           scripted_turns: Any) -> None:
    scripted_turns(4)
    busy, quiet = _agent("busy"), _agent("quiet")
    api.submit_new_job_ids(busy, [{"who": "busy", "i": 0}])
    api.submit_new_job_ids(quiet, [{"who": "quiet", "i": 0}])
    await run_jobs_loop(1, queue_prefixes=["test"], auto_terminate=True)
    # each agent's job waits while the other's runs: their steps alternate in the one slot
    assert _runs(marks) == [1] * 8
    assert {who for who, _ in marks} == {"busy", "quiet"}


async def test_observers_hear_every_step_of_a_run(api: statek.StatekClientAPI,
                                                  scripted_turns: Any) -> None:
    scripted_turns(2)
    heard: list[str] = []
    agent = _agent("heard")
    [uuid] = api.submit_new_job_ids(agent, [{"who": "heard", "i": 7}])
    forget = signals.observe(lambda job_uuid, job=None: heard.append(job_uuid))
    try:
        stats = await run_jobs_loop(1, queue_prefixes=["test"], auto_terminate=True)
    finally:
        forget()
    assert stats.steps_done == 4
    assert heard.count(uuid) >= stats.steps_done  # at least once at the end of each step

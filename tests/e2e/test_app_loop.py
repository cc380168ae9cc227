"""`start_statek_async` inside an application's own running loop: the application's tasks
keep running beside the worker, its signal handlers stay its own, and cancelling the worker
(or a timeout around it) raises as asyncio code expects, with the counters still readable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import statek
from statek import start_statek_async
from statek.providers import (
    ChatReply,
    ChatRequest,
    OpenAICompatibleProvider,
    add_provider,
    remove_provider,
)
from statek.runner import last_stats
from statek.runtime.stats import LoopStats
from tests.e2e import tools
from tests.e2e.conftest import Servers
from tests.e2e.helpers import OPENAI_KEY, run_app
from tests.e2e.scenarios import (
    NoteFlow,
    ToolFlow,
    anthropic,
    assert_no_unmatched,
    fetch_job,
    load,
    openai,
)

TICKS_SEEN_BY_JOBS = 3


@pytest.fixture(autouse=True)
def _fresh_app_state() -> Iterator[None]:
    tools.reset_app_state()
    yield
    tools.reset_app_state()


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[asyncio.Task[None]]:
    """The application's own background work: a task that ticks until the app ends."""

    async def tick() -> None:
        while True:
            tools.APP_TICKS.beat()
            await asyncio.sleep(0.002)

    task = asyncio.create_task(tick(), name="app-ticker")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_worker_runs_beside_the_applications_tasks(servers: Servers, loop_kind: str,
                                                   api: statek.StatekClientAPI) -> None:
    gpt = ToolFlow("SCN-APP-GPT", openai())
    claude = ToolFlow("SCN-APP-CLAUDE", anthropic())
    before_openai = load(servers.openai, gpt.rules())
    before_anthropic = load(servers.anthropic, claude.rules())
    agents = [gpt.agent(), claude.agent()]
    jobs = [(flow, api.submit_new_job(agent, {"word": f"{flow.marker}-{i}"}).uuid,
             f"{flow.marker}-{i}") for flow, agent in zip((gpt, claude), agents, strict=True)
            for i in range(2)]
    pulse = statek.Agent("SCN-APP-PULSE", "", tools=[tools.e2e_app_ticks],
                         metadata={"MODEL": "openai/e2e-unused"})
    pulses = [api.submit_new_job(pulse, {"i": i}, warmup_code=(
        f"exit(e2e_app_ticks({TICKS_SEEN_BY_JOBS}))")).uuid for i in range(2)]
    app_terms: list[int] = []

    async def main() -> tuple[LoopStats, int, bool]:
        loop = asyncio.get_running_loop()
        term = asyncio.Event()

        def on_term() -> None:  # the application's own SIGTERM handling
            app_terms.append(1)
            term.set()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            async with ticking() as ticker:
                stats = await start_statek_async(
                    agents=[*agents, pulse], settings=servers.settings(False),
                    max_concurrency=4, auto_terminate=True)
                ticks_after_worker = tools.APP_TICKS.count
                await tools.APP_TICKS.reach(ticks_after_worker + 2)  # still ticking
                alive = not ticker.done()
                # the application's SIGTERM handler is still the one in charge
                assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(term.wait(), 30)
            return stats, ticks_after_worker, alive
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    stats, ticks, alive = run_app(loop_kind, main)

    for flow, uuid, word in jobs:
        flow.check(fetch_job(uuid), word, loop_kind)  # the tools ran on the app's loop
    for uuid in pulses:
        job = fetch_job(uuid)
        assert (str(job.status), job.error) == ("DONE", None), job.console
        assert job.exit_status >= TICKS_SEEN_BY_JOBS  # the app's task ran while jobs waited
    assert alive and ticks >= TICKS_SEEN_BY_JOBS
    assert app_terms == [1]
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert stats.jobs_completed == len(jobs) + len(pulses) and stats.steps_failed == 0


def _note_jobs(servers: Servers, api: statek.StatekClientAPI, note: Any,
               count: int = 3) -> tuple[NoteFlow, list[str], dict[str, int]]:
    flow = NoteFlow("SCN-APP-NOTE", openai(), note)
    before = load(servers.openai, flow.rules())
    agent = flow.agent()
    uuids = [api.submit_new_job(agent, {"word": f"note-{i}"}).uuid for i in range(count)]
    return flow, uuids, before


def _check_noted(flow: NoteFlow, uuids: list[str], servers: Servers,
                 before: dict[str, int]) -> LoopStats:
    """Every job finished (its last step was in flight when the worker was stopped, and
    finished in its grace period) and the stopped worker's counters are still readable."""
    for i, uuid in enumerate(uuids):
        flow.check(fetch_job(uuid), f"note-{i}")
    assert_no_unmatched(servers.openai, before)
    stats = last_stats()
    assert stats is not None
    assert stats.jobs_completed == len(uuids) and stats.steps_failed == 0
    return stats


def test_cancelling_the_worker_raises_cancelled_error(servers: Servers, loop_kind: str,
                                                      api: statek.StatekClientAPI) -> None:
    flow, uuids, before = _note_jobs(servers, api, tools.e2e_note_and_hold)

    async def main() -> None:
        worker = asyncio.create_task(start_statek_async(settings=servers.settings(False),
                                                        max_concurrency=4))
        await asyncio.wait_for(tools.NOTED.reach(len(uuids)), 60)
        # every job's last step is in flight, held in its tool: cancel, then let them go
        # (callbacks run in order: the worker sees its cancellation first)
        worker.cancel()
        asyncio.get_running_loop().call_soon(tools.RELEASE.beat)
        with pytest.raises(asyncio.CancelledError):
            await worker

    run_app(loop_kind, main)
    stats = _check_noted(flow, uuids, servers, before)
    assert stats.in_flight == 0, "steps that finished in the grace period still count"


def test_timeout_around_the_worker_raises_timeout_error(servers: Servers, loop_kind: str,
                                                        api: statek.StatekClientAPI) -> None:
    flow, uuids, before = _note_jobs(servers, api, tools.e2e_note)

    async def main() -> None:
        async def expire_when_noted(scope: asyncio.Timeout) -> None:
            await tools.NOTED.reach(len(uuids))
            scope.reschedule(asyncio.get_running_loop().time())

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(60) as scope:
                watcher = asyncio.create_task(expire_when_noted(scope))
                await start_statek_async(settings=servers.settings(False), max_concurrency=4)
        assert watcher.done(), "the timeout fired before the jobs were done"

    run_app(loop_kind, main)
    _check_noted(flow, uuids, servers, before)


class _WatchedOpenAI(OpenAICompatibleProvider):
    """The real OpenAI-compatible provider, telling the test when a call of its is cut off."""

    def __init__(self, base_url: str, cut_off: tools.Beats) -> None:
        super().__init__(base_url, OPENAI_KEY, name="stalling", max_retries=0)
        self.cut_off = cut_off

    async def complete(self, request: ChatRequest) -> ChatReply:
        try:
            return await super().complete(request)
        except asyncio.CancelledError:
            self.cut_off.beat()
            raise


def test_model_slower_than_step_timeout_fails_that_step_only(
        servers: Servers, loop_kind: str, api: statek.StatekClientAPI) -> None:
    """The model call itself outlives `step_timeout`: that job records the timeout (and would
    retry later); the other jobs finish and the worker stops cleanly when cancelled."""
    cut_off = tools.Beats()
    add_provider("stalling", _WatchedOpenAI(servers.tools.url + "/stall", cut_off))
    try:
        flow, uuids, before = _note_jobs(servers, api, tools.e2e_note)
        stalled_agent = statek.Agent("SCN-APP-STALL", "You wait.",
                                     metadata={"MODEL": "stalling/e2e-stall-model"})
        stalled = api.submit_new_job(stalled_agent, {"n": 1}, step_timeout=0.5).uuid

        async def main() -> None:
            worker = asyncio.create_task(start_statek_async(settings=servers.settings(False),
                                                            max_concurrency=4))
            await asyncio.wait_for(cut_off.reach(1), 60)
            await asyncio.wait_for(tools.NOTED.reach(len(uuids)), 60)
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker

        run_app(loop_kind, main)
    finally:
        remove_provider("stalling")
    _check_noted(flow, uuids, servers, before)
    job = fetch_job(stalled)
    assert str(job.status) != "DONE" and job.provider_failures == 1
    assert job.error == ("provider timed out after 0.5s (step_timeout: the job param, or "
                         "STATEK_STEP_TIMEOUT)")
    assert [(e["kind"], e["message"]) for e in job.chat_log] == [("error", job.error)]
    assert servers.tools.counts()["/stall/chat/completions"] >= 1

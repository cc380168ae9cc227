"""A step runs as one whole asyncio Task inside the worker loop.

Everything a step enters before its first wait (httpx/anyio cancel scopes, `asyncio.timeout`,
`async with` in tools) must be left in the same task; a step's own timeout cancels that step
only. These go through `run_jobs_loop`, the path a worker takes, not `run_job_step`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

import statek
from statek.executors.utils import run_jobs_loop
from statek.models.status import JobStatus
from statek.providers import OpenAICompatibleProvider, add_provider, remove_provider
from tests.support.provider_stub import ProviderStub, RecordedRequest, StubReply, openai_reply

pytestmark = pytest.mark.usefixtures("each_http_client")

SEEN: dict[str, Any] = {}


@asynccontextmanager
async def _scoped(name: str) -> AsyncIterator[None]:
    SEEN[f"{name}:enter"] = asyncio.current_task()
    yield
    SEEN[f"{name}:exit"] = asyncio.current_task()


@statek.tool
async def wt_scoped(url: str) -> int:
    """Enters asyncio.timeout and an async context manager before its first wait."""
    async with asyncio.timeout(30), _scoped("tool"), httpx.AsyncClient() as client:
        reply = await client.post(url + "/chat/completions", json={"model": "m"})
    return reply.status_code


@statek.tool
async def wt_slow(seconds: float) -> str:
    """Slower than the step's timeout."""
    await asyncio.sleep(seconds)
    return "too late"


@statek.tool
async def wt_own_timeout() -> str:
    """Its own asyncio.timeout expires: that is the tool's TimeoutError, nobody else's."""
    async with asyncio.timeout(0.01):
        await asyncio.Event().wait()
    return "unreachable"


@statek.tool
def wt_raises(text: str) -> None:
    raise ValueError(text)


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as server:
        yield server


@pytest.fixture
def toolbox(statek_store: str) -> statek.Agent:
    return statek.Agent("tasker", "You use tools.",
                        tools=[wt_scoped, wt_slow, wt_own_timeout, wt_raises])


async def _run(queue_prefix: str, **kwargs: Any) -> Any:
    async with asyncio.timeout(60):  # a failure bound, not a timing target
        return await run_jobs_loop(queue_prefixes=[queue_prefix], auto_terminate=True,
                                   **kwargs)


async def test_real_http_provider_through_the_worker_loop(api: statek.StatekClientAPI,
                                                          agent: statek.Agent,
                                                          stub: ProviderStub) -> None:
    """httpx enters anyio cancel scopes before its first wait: the eager start tore them."""
    def by_turn(request: RecordedRequest) -> StubReply:
        first = len(request.json()["messages"]) <= 2  # system + the first user message
        return StubReply(body=openai_reply("```python\nx = 20\n```" if first else "exit(x + 1)"))

    stub.script(*[by_turn] * 10)
    add_provider("wt-http", OpenAICompatibleProvider(stub.url, "sk", name="wt-http",
                                                     max_retries=0))
    try:
        jobs = [api.submit_new_job(agent, {}, model="wt-http/m") for _ in range(5)]
        stats = await _run("test", max_concurrency=3)
    finally:
        remove_provider("wt-http")
    assert [(j.status, j.exit_status, j.error) for j in jobs] == [
        (JobStatus.DONE, 21, None)] * 5
    assert stats.jobs_completed == 5 and stats.steps_failed == 0
    assert len(stub.requests) == 10


async def test_async_tool_scopes_stay_in_one_task(api: statek.StatekClientAPI,
                                                  toolbox: statek.Agent,
                                                  stub: ProviderStub) -> None:
    SEEN.clear()
    job = api.submit_new_job(toolbox, {"url": stub.url},
                             warmup_code="code = wt_scoped(url)\nexit(code)")
    stats = await _run("test", provider="scripted")
    assert (job.status, job.exit_status, job.error) == (JobStatus.DONE, 200, None)
    assert SEEN["tool:enter"] is SEEN["tool:exit"]
    assert SEEN["tool:enter"] is not None
    assert stats.jobs_completed == 1


async def test_step_timeout_cancels_that_step_only(api: statek.StatekClientAPI,
                                                   toolbox: statek.Agent) -> None:
    slow = api.submit_new_job(
        toolbox, {}, step_timeout=0.2,
        warmup_code="try:\n    wt_slow(30)\nexcept TimeoutError:\n    exit('timed out')\n")
    others = [api.submit_new_job(toolbox, {"i": i}, warmup_code="exit(i)") for i in range(20)]
    own = api.submit_new_job(
        toolbox, {}, warmup_code="try:\n    wt_own_timeout()\nexcept TimeoutError:\n"
                                "    exit('own timeout')\n")
    raising = api.submit_new_job(
        toolbox, {}, warmup_code="try:\n    wt_raises('no')\nexcept ValueError as e:\n"
                                "    exit(str(e))\n")
    stats = await _run("test", max_concurrency=4, provider="scripted")
    assert (slow.status, slow.exit_status) == (JobStatus.DONE, "timed out")
    assert (own.status, own.exit_status) == (JobStatus.DONE, "own timeout")
    assert (raising.status, raising.exit_status) == (JobStatus.DONE, "no")
    assert [j.exit_status for j in others] == list(range(20))
    assert stats.jobs_completed == 23 and stats.steps_failed == 0


async def test_uncaught_tool_timeout_is_recorded_on_the_job(api: statek.StatekClientAPI,
                                                            toolbox: statek.Agent) -> None:
    job = api.submit_new_job(toolbox, {}, step_timeout=0.1, max_consecutive_exceptions=1,
                             warmup_code="wt_slow(30)\n")
    stats = await _run("test", provider="scripted")
    assert job.status == JobStatus.DONE
    assert "TimeoutError" in "".join(job.console)
    assert job.error is not None
    assert stats.jobs_completed == 1

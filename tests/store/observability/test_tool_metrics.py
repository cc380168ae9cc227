"""tool_calls_total counts every tool call a job makes, whichever way: sync and async tools
called from job code, in process and from an isolated executor (sync tools called from job
code were not counted at all)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import statek
from statek import store
from statek.executors.utils import run_jobs_loop
from statek.observability import hooks
from statek.observability.recorder import RECORDER
from statek.tools import tool

pytestmark = pytest.mark.usefixtures("execution_mode")


@tool
def metered_add(a: int, b: int) -> int:
    return a + b


@tool
def metered_refuse() -> None:
    raise ValueError("refused")


@tool
async def metered_double(n: int) -> int:
    return 2 * n


@pytest.fixture
def metrics_on(statek_store: str) -> Iterator[None]:
    hooks.configure(store.settings())
    assert hooks.ON
    yield


@pytest.mark.usefixtures("metrics_on")
async def test_tool_calls_from_job_code_are_counted(api: statek.StatekClientAPI) -> None:
    agent = statek.SupervisedAgent("metered", tools=["metered_add", "metered_refuse",
                                                     "metered_double"])
    agent.update_warmup_def(
        "x = metered_add(1, 2) + metered_add(3, 4)\n"
        "try:\n    metered_refuse()\nexcept ValueError:\n    pass\n"
        "y = metered_double(x)\nexit(y)")
    job = api.submit_new_job(agent, {})
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == 20 and job.error is None
    assert dict(RECORDER.tool_calls) == {("metered_add", "ok"): 2,
                                         ("metered_refuse", "error"): 1,
                                         ("metered_double", "ok"): 1}

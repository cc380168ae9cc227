"""Model-call counters: latency, tokens, and provider errors and retries by status code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import statek
from statek import store
from statek.errors import ProviderError
from statek.executors.utils import run_job_step
from statek.observability import hooks
from statek.observability.recorder import RECORDER
from statek.providers import add_provider, remove_provider
from statek.providers.types import ChatReply, Usage


class Flaky:
    """Fails with the given statuses in order, then answers."""

    name = "flaky"

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)

    async def complete(self, request: Any) -> ChatReply:
        if self.statuses:
            status = self.statuses.pop(0)
            raise ProviderError(f"HTTP {status}", status=status, retryable=status >= 500)
        return ChatReply(content="exit('ok')", usage=Usage(input_tokens=11, output_tokens=3))


@pytest.fixture
def flaky(statek_store: str) -> Iterator[None]:
    hooks.configure(store.settings())
    assert hooks.ON
    yield
    remove_provider("flaky")


async def test_errors_retries_and_tokens(flaky: None, api: statek.StatekClientAPI) -> None:
    add_provider("flaky", Flaky([503, 429]))
    agent = statek.Agent("asker", "", metadata={"MODEL": "flaky/m1"})
    job = api.submit_new_job(agent, {})
    for _ in range(3):  # two failures (each retried later), then the reply
        await run_job_step(job)
    assert RECORDER.provider_errors == {("flaky", "503"): 1, ("flaky", "429"): 1}
    assert RECORDER.provider_retries == {("flaky", "503"): 1, ("flaky", "429"): 1}
    assert RECORDER.model_calls == {("flaky", "m1", "error"): 2, ("flaky", "m1", "ok"): 1}
    assert RECORDER.tokens == {("flaky", "m1", "input"): 11, ("flaky", "m1", "output"): 3}
    assert RECORDER.model_latency["flaky", "m1"].count == 3
    assert RECORDER.steps_started["asker"] == 3


async def test_the_failure_that_ends_the_job_is_not_counted_as_a_retry(
        flaky: None, api: statek.StatekClientAPI) -> None:
    """Three failed steps in a row end the job: two were asked again, the third was not (it
    was counted as a retry too)."""
    add_provider("flaky", Flaky([500, 500, 500]))
    agent = statek.Agent("giving-up", "", metadata={"MODEL": "flaky/m3"})
    job = api.submit_new_job(agent, {})
    for _ in range(3):
        await run_job_step(job)
    assert job.is_done and "3 failures in a row" in (job.error or "")
    assert RECORDER.provider_errors == {("flaky", "500"): 3}
    assert RECORDER.provider_retries == {("flaky", "500"): 2}


async def test_a_final_client_error_is_not_counted_as_a_retry(
        flaky: None, api: statek.StatekClientAPI) -> None:
    add_provider("flaky", Flaky([401]))
    agent = statek.Agent("denied", "", metadata={"MODEL": "flaky/m2"})
    job = api.submit_new_job(agent, {})
    assert await run_job_step(job) is True  # a 401 ends the job
    assert RECORDER.provider_errors == {("flaky", "401"): 1}
    assert RECORDER.provider_retries == {}

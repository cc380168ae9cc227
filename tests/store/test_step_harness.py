"""Harness limits end a job with the reason recorded; dialog vs code-first completion;
nothing a job does makes run_job_step raise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import statek
from statek.execution.conversation import NO_CODE_HINT
from statek.executors.utils import run_job_step
from statek.models.status import JobStatus
from statek.providers import (
    ChatReply,
    ChatRequest,
    OpenAICompatibleProvider,
    ScriptedProvider,
    Usage,
    add_provider,
    remove_provider,
)
from tests.support.provider_stub import ProviderStub, StubReply, openai_reply

PROVIDER = "step-harness"


@pytest.fixture
def script(statek_store: str) -> Iterator[Any]:
    def install(replies: Any, **kwargs: Any) -> ScriptedProvider:
        provider = ScriptedProvider(replies, **kwargs)
        add_provider(PROVIDER, provider)
        return provider

    yield install
    remove_provider(PROVIDER)


async def steps_until_done(job: Any, limit: int = 60) -> int:
    for n in range(1, limit + 1):
        if await run_job_step(job, PROVIDER):
            return n
    raise AssertionError(f"not done after {limit} steps: {job.status} {job.error}")


# --- limits ---------------------------------------------------------------------------------------


async def test_max_turns(api: statek.StatekClientAPI, agent: statek.Agent, script: Any) -> None:
    provider = script(["x = 1"])
    job = api.submit_new_job(agent, {}, max_turns=3)
    assert await steps_until_done(job) == 4
    assert provider.calls == 3 and job.turns == 3
    assert job.status == JobStatus.DONE and job.exit_status is None
    assert job.error == "harness: 3 turns reached max_turns=3"


async def test_max_turns_from_settings(api: statek.StatekClientAPI, agent: statek.Agent,
                                       script: Any) -> None:
    statek.init(statek.get_statek_settings(max_turns=2))
    try:
        script(["x = 1"])
        job = api.submit_new_job(agent, {})
        assert await steps_until_done(job) == 3
    finally:
        statek.init()
    assert job.error == "harness: 2 turns reached max_turns=2"


async def test_max_exceptions(api: statek.StatekClientAPI, agent: statek.Agent,
                              script: Any) -> None:
    script(["y = 1 / 0", "x = 1"])  # failures are never consecutive
    job = api.submit_new_job(agent, {}, max_exceptions=3, max_consecutive_exceptions=0)
    await steps_until_done(job)
    assert job.exceptions == 3
    assert job.error == ("harness: 3 exceptions reached max_exceptions=3; the last: "
                         "ZeroDivisionError: division by zero")
    assert sum("ZeroDivisionError" in line for line in job.console) == 3


async def test_max_consecutive_exceptions(api: statek.StatekClientAPI, agent: statek.Agent,
                                          script: Any) -> None:
    script(["y = 1 / 0", "x = 1", "y = undefined_name", "y = [][1]"] + ["y = {}['k']"] * 10,
           cycle=False)
    job = api.submit_new_job(agent, {}, max_consecutive_exceptions=3, max_exceptions=0)
    await steps_until_done(job)
    assert job.exceptions == 4
    assert job.error == ("harness: 3 consecutive exceptions reached "
                         "max_consecutive_exceptions=3; the last: KeyError: 'k'")


async def test_a_limit_reached_by_refused_code_names_the_refusal(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Any) -> None:
    """A new user found only the limit in `job.error`; what was refused was in the console."""
    script(["import os\nos.system('touch /tmp/statek-pwned')"])
    job = api.submit_new_job(agent, {}, max_consecutive_exceptions=2, max_exceptions=0)
    await steps_until_done(job)
    assert job.error is not None
    limit, _, cause = job.error.partition("; the last: ")
    assert limit == "harness: 2 consecutive exceptions reached max_consecutive_exceptions=2"
    assert cause.startswith("SandboxViolation: line 1: import of 'os' is not allowed")


async def test_max_tokens_with_the_providers_counts(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    with ProviderStub() as stub:
        stub.script(*[StubReply(body=openai_reply("x = 1", prompt_tokens=30,
                                                  completion_tokens=10)) for _ in range(10)])
        add_provider(PROVIDER, OpenAICompatibleProvider(stub.url, None, name="metered",
                                                        max_retries=0))
        try:
            job = api.submit_new_job(agent, {}, max_tokens=100)
            assert await steps_until_done(job) == 3
        finally:
            remove_provider(PROVIDER)
        assert len(stub.requests) == 3
    assert (job.input_tokens, job.output_tokens) == (90, 30)
    assert job.error == "harness: 120 tokens reached max_tokens=100"
    assert job.pending_code is None  # the reply over budget is not run


async def test_max_tokens_checked_before_a_request(api: statek.StatekClientAPI,
                                                   agent: statek.Agent, script: Any) -> None:
    provider = script([ChatReply("x = 1", usage=Usage(40, 10))])
    job = api.submit_new_job(agent, {}, max_tokens=50)
    assert await run_job_step(job, PROVIDER) is True  # 50 used: the reply is the last
    assert provider.calls == 1
    assert job.error == "harness: 50 tokens reached max_tokens=50"


async def test_step_timeout_on_a_slow_provider(api: statek.StatekClientAPI, agent: statek.Agent,
                                               script: Any) -> None:
    provider = script(["exit('too late')"], latency=0.5)
    job = api.submit_new_job(agent, {}, step_timeout=0.05)
    started = time.perf_counter()
    results = [await run_job_step(job, PROVIDER) for _ in range(3)]
    elapsed = time.perf_counter() - started
    assert results == [False, False, True]
    assert elapsed < 1.0  # never waited for the slow replies
    assert provider.calls == 3
    assert job.status == JobStatus.DONE and job.exit_status is None
    assert job.error is not None and "timed out after 0.05s" in job.error
    assert len([e for e in job.chat_log if e["kind"] == "error"]) == 3


async def test_step_timeout_on_a_slow_async_tool(api: statek.StatekClientAPI,
                                                 statek_store: str) -> None:
    import asyncio

    @statek.tool
    async def sh_slow() -> str:
        await asyncio.sleep(2)
        return "slow"

    agent = statek.Agent("impatient", "", tools=[sh_slow])
    job = api.submit_new_job(agent, {}, step_timeout=0.05, warmup_code=(
        "try:\n    r = sh_slow()\nexcept TimeoutError:\n    r = 'timed out'\nexit(r)"))
    started = time.perf_counter()
    assert await run_job_step(job) is True
    assert time.perf_counter() - started < 1.0
    assert job.exit_status == "timed out"


async def test_limits_off_with_zero(api: statek.StatekClientAPI, agent: statek.Agent,
                                    script: Any) -> None:
    script(["y = 1 / 0"] * 8 + ["exit('still here')"], cycle=False)
    job = api.submit_new_job(agent, {}, max_exceptions=0, max_consecutive_exceptions=0,
                             max_turns=0, max_tokens=0)
    await steps_until_done(job)
    assert job.exit_status == "still here" and job.exceptions == 8


# --- completion -------------------------------------------------------------------------------


async def test_dialog_agent_ends_on_plain_text(api: statek.StatekClientAPI, statek_store: str,
                                               script: Any) -> None:
    talker = statek.Agent("talker", "You chat.", metadata={"DIALOG": True})
    script(["```python\nprint(2 + 2)\n```", "The answer is 4."], cycle=False)
    job = api.submit_new_job(talker, {})
    assert await run_job_step(job, PROVIDER) is False
    assert await run_job_step(job, PROVIDER) is True
    assert job.console == ["4\n"]
    assert job.exit_status == "The answer is 4." and job.error is None


async def test_dialog_job_reopened_by_a_message(api: statek.StatekClientAPI,
                                                statek_store: str, script: Any) -> None:
    talker = statek.Agent("talker2", "You chat.", metadata={"DIALOG": True})
    provider = script(["Hello!", "Bye then."], cycle=False, record=True)
    job = api.submit_new_job(talker, {})
    assert await run_job_step(job, PROVIDER) is True
    job.push_user_message("one more thing")
    assert job.status == JobStatus.STARTED
    assert await run_job_step(job, PROVIDER) is True
    assert job.exit_status == "Bye then."
    assert "Message: one more thing" in provider.requests[1].messages[-1].content


async def test_code_first_agent_goes_on_after_plain_text(api: statek.StatekClientAPI,
                                                         agent: statek.Agent,
                                                         script: Any) -> None:
    provider = script(["I think we are done.", "x = 1", "exit('now')"], cycle=False,
                      record=True)
    job = api.submit_new_job(agent, {})
    assert await run_job_step(job, PROVIDER) is False
    assert await run_job_step(job, PROVIDER) is False
    assert job.status == JobStatus.STARTED
    assert await run_job_step(job, PROVIDER) is False
    assert await run_job_step(job, PROVIDER) is True
    assert job.exit_status == "now"
    # prose ran nothing, and the model is told so (a new user's model spent its 50 turns
    # on "(no output)"); code that printed nothing is "(no output)"
    assert provider.requests[1].messages[-1].content == NO_CODE_HINT
    assert "no Python code" in NO_CODE_HINT and "exit(result)" in NO_CODE_HINT
    assert provider.requests[2].messages[-1].content == "(no output)"


# --- isolation -------------------------------------------------------------------------------


class _Weird(Exception):
    def __str__(self) -> str:
        raise RuntimeError("even str() fails")


def _reply_chaos(request: ChatRequest) -> str:
    turn = len(request.messages)
    return [
        "raise SystemExit(3)",  # not a builtin in restricted mode: NameError
        "raise KeyboardInterrupt()",
        "import sys",
        "x = 10 ** 10 ** 10 if False else [1] * 3\nx[5]",
        "def f():\n    return f()\nf()",
        "while False:\n    pass\nraise ValueError('plain')",
        "```python\n\x00\n```",
        "class E(Exception):\n    pass\nraise E()",
        "exit(lambda: 1)",
    ][min((turn - 1) // 2, 8)]


async def test_nothing_job_code_does_makes_a_step_raise(api: statek.StatekClientAPI,
                                                        agent: statek.Agent,
                                                        script: Any) -> None:
    script(_reply_chaos)
    job = api.submit_new_job(agent, {}, max_exceptions=0, max_consecutive_exceptions=0)
    await steps_until_done(job, limit=30)
    assert job.status == JobStatus.DONE
    assert job.exceptions >= 7
    text = "".join(job.console)
    for expected in ("NameError", "IndexError", "RecursionError", "ValueError: plain",
                     "import of 'sys'"):
        assert expected in text, expected


@pytest.mark.parametrize("warmup", [
    "raise SystemExit(1)",
    "def g():\n    yield 1\nexit(g())",
    "exit(object())",
    "import math\nexit(math)",
    "class K:\n    pass\nexit(K)",
    "1 / 0",
])
async def test_warmup_failures_end_the_job_cleanly(api: statek.StatekClientAPI,
                                                   agent: statek.Agent, warmup: str) -> None:
    job = api.submit_new_job(agent, {}, warmup_code=warmup)
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE
    assert job.exit_status is not None or job.error is not None
    assert await run_job_step(job) is False

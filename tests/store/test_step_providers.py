"""Which provider a step asks, what it records, and how provider failures are handled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import statek
from statek.errors import ProviderError
from statek.executors.utils import run_job_step
from statek.models.status import JobStatus
from statek.providers import (
    AnthropicProvider,
    ChatReply,
    ChatRequest,
    OpenAICompatibleProvider,
    ScriptedProvider,
    Usage,
    add_provider,
    remove_provider,
)
from tests.support.provider_stub import (
    ProviderStub,
    StubReply,
    anthropic_reply,
    error_reply,
    openai_reply,
)
from tests.support.scripted_answers import answers_in_order

pytestmark = pytest.mark.usefixtures("each_http_client")


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def registered(statek_store: str) -> Iterator[dict[str, ScriptedProvider]]:
    """Recording scripted providers "p1" and "p2", and a recording default under "scripted"."""
    providers = {name: ScriptedProvider([f"exit('{name}')"], record=True)
                 for name in ("p1", "p2", "scripted", "argprov")}
    for name, provider in providers.items():
        add_provider(name, provider)
    yield providers
    for name in providers:
        remove_provider(name)


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as server:
        yield server


async def run_to_end(job: Any, provider: str | None = None, limit: int = 10) -> int:
    for n in range(1, limit + 1):
        if await run_job_step(job, provider):
            return n
    raise AssertionError(f"not done after {limit} steps: {job.status} {job.error}")


# --- choosing the provider -----------------------------------------------------------------------


@pytest.mark.parametrize(("job_params", "arg", "expected", "model"), [
    ({"model": "p1/big-model"}, "argprov", "p1", "big-model"),
    ({"metadata": {"MODEL": "p2/m2"}}, None, "p2", "m2"),
    ({"metadata": {"PROVIDER": "p2", "MODEL": "p1/m9"}}, "argprov", "p2", "m9"),
    ({"provider": "p1"}, "argprov", "p1", "scripted"),
    ({"model": "vendor/name-without-provider"}, "argprov", "argprov",
     "vendor/name-without-provider"),
    ({}, "argprov", "argprov", "scripted"),
    ({}, None, "scripted", "scripted"),
])
async def test_provider_choice(api: statek.StatekClientAPI, agent: statek.Agent,
                               registered: dict[str, ScriptedProvider], job_params: dict[str, Any],
                               arg: str | None, expected: str, model: str) -> None:
    job = api.submit_new_job(agent, {}, **job_params)
    assert await run_to_end(job, arg) == 2
    assert job.exit_status == expected
    asked = {name: p.calls for name, p in registered.items()}
    assert asked == {name: (1 if name == expected else 0) for name in registered}
    assert registered[expected].requests[0].model == model


async def test_agent_metadata_chooses_the_model(api: statek.StatekClientAPI, statek_store: str,
                                                registered: dict[str, ScriptedProvider]) -> None:
    agent = statek.Agent("picky", "", metadata={"MODEL": "p2/agent-model"})
    job = api.submit_new_job(agent, {})
    assert await run_to_end(job, "argprov") == 2
    assert job.exit_status == "p2"
    assert registered["p2"].requests[0].model == "agent-model"


async def test_settings_default_provider(api: statek.StatekClientAPI, agent: statek.Agent,
                                         registered: dict[str, ScriptedProvider],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = statek.get_statek_settings(default_provider="p1")
    statek.init(settings)
    try:
        job = api.submit_new_job(agent, {})
        assert await run_to_end(job) == 2
        assert job.exit_status == "p1"
    finally:
        statek.init()


async def test_unknown_provider_is_recorded_not_raised(api: statek.StatekClientAPI,
                                                       agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, provider="no-such-provider")
    assert await run_job_step(job) is False
    assert "no-such-provider" in (job.error or "")
    (entry,) = job.chat_log
    assert entry["kind"] == "error" and "no-such-provider" in entry["message"]
    assert await run_job_step(job) is False
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE and "3 failures" in (job.error or "")


# --- the request ----------------------------------------------------------------------------------


async def test_request_carries_prompt_history_and_output(
        api: statek.StatekClientAPI, statek_store: str) -> None:
    agent = statek.Agent("asker", "You answer questions.")
    provider = ScriptedProvider(["print('hi', q)", "exit(1)"], cycle=False, record=True)
    add_provider("recorder", provider)
    try:
        job = api.submit_new_job(agent, {"q": "why"})
        assert await run_to_end(job, "recorder") == 3
    finally:
        remove_provider("recorder")
    first, second = provider.requests
    assert first.system.startswith("You answer questions.")
    assert "exit(" in first.system  # the code-first guide
    assert [m.role for m in first.messages] == ["user"]
    assert "q = 'why'" in first.messages[0].content
    assert [m.role for m in second.messages] == ["user", "assistant", "user"]
    assert second.messages[1].content == "print('hi', q)"
    assert second.messages[2].content == "Output:\nhi why\n"


# --- an HTTP provider against the stub --------------------------------------------------------


async def test_openai_compatible_provider_drives_a_job(api: statek.StatekClientAPI,
                                                       agent: statek.Agent,
                                                       stub: ProviderStub) -> None:
    stub.script(
        StubReply(body=openai_reply("```python\nanswer = 6 * 7\nprint(answer)\n```",
                                    prompt_tokens=100, completion_tokens=20)),
        StubReply(body=openai_reply("exit(answer)", prompt_tokens=130, completion_tokens=5)),
    )
    http = OpenAICompatibleProvider(stub.url, "sk-test", name="stubai", max_retries=0)
    add_provider("stubai", http)
    try:
        job = api.submit_new_job(agent, {}, model="stubai/gpt-stub-1")
        assert await run_to_end(job) == 3
    finally:
        remove_provider("stubai")
        await http.aclose()
    assert job.exit_status == 42 and job.console == ["42\n"]
    assert len(stub.requests) == 2
    body = stub.requests[1].json()
    assert body["model"] == "gpt-stub-1"
    assert stub.requests[1].headers["authorization"] == "Bearer sk-test"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "Output:\n42\n"
    # token usage as the provider reported it
    assert (job.input_tokens, job.output_tokens) == (230, 25)
    turns = [e for e in job.chat_log if e["kind"] == "turn"]
    assert [(t["input_tokens"], t["output_tokens"]) for t in turns] == [(100, 20), (130, 5)]


async def test_anthropic_provider_drives_a_job(api: statek.StatekClientAPI, agent: statek.Agent,
                                               stub: ProviderStub) -> None:
    stub.script(StubReply(body=anthropic_reply("exit('claude done')", input_tokens=50,
                                               output_tokens=4)))
    http = AnthropicProvider(stub.url, "key", name="stubclaude", max_retries=0)
    add_provider("stubclaude", http)
    try:
        job = api.submit_new_job(agent, {}, provider="stubclaude")
        assert await run_to_end(job) == 2
    finally:
        remove_provider("stubclaude")
        await http.aclose()
    assert job.exit_status == "claude done"
    assert (job.input_tokens, job.output_tokens) == (50, 4)


# --- failures ------------------------------------------------------------------------------------


async def test_provider_failure_is_recorded_and_ends_the_job_after_three(
        api: statek.StatekClientAPI, agent: statek.Agent, stub: ProviderStub) -> None:
    stub.script(*[error_reply(503, "overloaded") for _ in range(6)])
    http = OpenAICompatibleProvider(stub.url, None, name="flaky", max_retries=1, sleep=no_sleep)
    add_provider("flaky", http)
    try:
        job = api.submit_new_job(agent, {}, provider="flaky")
        for n in (1, 2):
            assert await run_job_step(job) is False
            assert job.status != JobStatus.DONE
            assert job.provider_failures == n
            assert "overloaded" in (job.error or "")
            errors = [e for e in job.chat_log if e["kind"] == "error"]
            assert len(errors) == n and "overloaded" in errors[-1]["message"]
        assert await run_job_step(job) is True
    finally:
        remove_provider("flaky")
        await http.aclose()
    assert len(stub.requests) == 6  # two attempts per step
    assert job.status == JobStatus.DONE
    assert "overloaded" in (job.error or "") and "3 failures" in (job.error or "")
    assert job.turns == 0


async def test_empty_replies_are_failed_calls(api: statek.StatekClientAPI,
                                               agent: statek.Agent) -> None:
    """A model that replied with nothing (content null, no tool calls) was asked again at
    once until max_turns, 50 calls in a second, and the job's error said only that the
    turns ran out. Now each is a failed call retried after a backoff, and three in a row
    end the job naming them; each is still a turn of the log, so its tokens count."""
    from statek.execution.step import execute_step

    add_provider("mute", ScriptedProvider([ChatReply("", finish_reason="stop"),
                                           ChatReply("  \n"), ChatReply("")]))
    try:
        job = api.submit_new_job(agent, {}, provider="mute")
        results = [await execute_step(job, "mute") for _ in range(3)]
    finally:
        remove_provider("mute")
    assert [r.retry_after for r in results[:2]] == [2.0, 4.0]  # backoff, not at once
    assert results[2].completed and results[2].failed
    assert job.turns == 3  # logged: the replies' tokens count against max_tokens, budgets
    assert sum(1 for e in job.chat_log if e["kind"] == "error") == 3
    assert job.error == ("provider error: the model's reply was empty (no text, no tool "
                         "calls; finish_reason None) (3 failures in a row)")


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_a_final_client_error_ends_the_job_at_once(api: statek.StatekClientAPI,
                                                         agent: statek.Agent, stub: ProviderStub,
                                                         status: int) -> None:
    stub.script(*[error_reply(status, "no such route") for _ in range(3)])
    http = OpenAICompatibleProvider(stub.url, None, name="refuser", max_retries=2,
                                    sleep=no_sleep)
    add_provider("refuser", http)
    try:
        job = api.submit_new_job(agent, {}, provider="refuser")
        assert await run_job_step(job) is True
    finally:
        remove_provider("refuser")
        await http.aclose()
    assert len(stub.requests) == 1  # neither the provider nor the step asked again
    assert job.status == JobStatus.DONE
    assert f"HTTP {status}" in (job.error or "") and "no such route" in (job.error or "")


async def test_a_success_resets_the_failure_count(api: statek.StatekClientAPI,
                                                  agent: statek.Agent) -> None:
    add_provider("wobbly", ScriptedProvider(answers_in_order([
        ProviderError("down"), ProviderError("down"), "x = 1",
        ProviderError("down"), ProviderError("down"), "exit('survived')"])))
    try:
        job = api.submit_new_job(agent, {}, provider="wobbly")
        assert await run_to_end(job) == 7  # 4 failures, 2 replies, running the last
    finally:
        remove_provider("wobbly")
    assert job.exit_status == "survived"
    assert job.error is None  # a job that recovered did not fail (README: check job.error)
    assert len([e for e in job.chat_log if e["kind"] == "error"]) == 4


async def test_malformed_reply_is_recorded(api: statek.StatekClientAPI, agent: statek.Agent,
                                           stub: ProviderStub) -> None:
    stub.script(StubReply(body={"choices": []}), StubReply(body="not json at all"),
                StubReply(body=openai_reply("exit('recovered')")))
    http = OpenAICompatibleProvider(stub.url, None, name="broken", max_retries=0)
    add_provider("broken", http)
    try:
        job = api.submit_new_job(agent, {}, provider="broken")
        assert await run_job_step(job) is False
        assert "malformed" in (job.error or "")
        assert await run_job_step(job) is False
        errors = [e["message"] for e in job.chat_log if e["kind"] == "error"]
        assert len(errors) == 2 and all("malformed" in m for m in errors)
        assert await run_to_end(job) == 2
    finally:
        remove_provider("broken")
        await http.aclose()
    assert job.exit_status == "recovered"


class Exploding:
    """A provider that breaks the protocol: raises something other than ProviderError."""

    name = "exploding"

    async def complete(self, request: ChatRequest) -> ChatReply:
        raise RuntimeError("bug in a third-party provider")

    async def aclose(self) -> None:
        return None


async def test_provider_raising_anything_is_a_recorded_failure(api: statek.StatekClientAPI,
                                                               agent: statek.Agent) -> None:
    add_provider("exploding", Exploding())
    try:
        job = api.submit_new_job(agent, {}, provider="exploding")
        results = [await run_job_step(job) for _ in range(3)]
    finally:
        remove_provider("exploding")
    assert results == [False, False, True]
    assert "bug in a third-party provider" in (job.error or "")
    assert len([e for e in job.chat_log if e["kind"] == "error"]) == 3


# --- usage ---------------------------------------------------------------------------------------


async def test_reported_usage_is_recorded(api: statek.StatekClientAPI,
                                          agent: statek.Agent) -> None:
    replies = [ChatReply("x = 1", usage=Usage(1000, 10)), ChatReply("exit(x)", usage=Usage(7, 3))]
    add_provider("metered", ScriptedProvider(replies, cycle=False))
    try:
        job = api.submit_new_job(agent, {}, provider="metered")
        assert await run_to_end(job) == 3
    finally:
        remove_provider("metered")
    assert (job.input_tokens, job.output_tokens) == (1007, 13)
    turns = [e for e in job.chat_log if e["kind"] == "turn"]
    assert [(t["input_tokens"], t["output_tokens"]) for t in turns] == [(1000, 10), (7, 3)]


async def test_replacing_a_provider_takes_effect_at_the_next_step(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """What a job's provider name resolves to is cached per definition; registering another
    provider under the name must still reach the very next request."""
    first = ScriptedProvider(["x = 1"], record=True)
    second = ScriptedProvider(["exit('second')"], record=True)
    add_provider("swap", first)
    try:
        job = api.submit_new_job(agent, {}, provider="swap")
        assert await run_job_step(job) is False
        add_provider("swap", second)
        assert await run_to_end(job) == 2
    finally:
        remove_provider("swap")
    assert (first.calls, second.calls) == (1, 1)
    assert job.exit_status == "second"


async def test_a_job_cancelled_during_its_step_stays_cancelled(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """DONE -> STARTED is a legal move (a message re-opens a job), so a step that did not look
    would revive a job cancelled while it awaited the model; it must drop the reply instead."""
    jobs: list[Any] = []

    async def cancel_then_answer(request: ChatRequest) -> str:
        assert jobs[0].cancel("stop now")
        return "exit('too late')"

    add_provider("canceller", ScriptedProvider(cancel_then_answer))
    try:
        jobs.append(api.submit_new_job(agent, {}, provider="canceller"))
        assert await run_job_step(jobs[0]) is False
    finally:
        remove_provider("canceller")
    job = jobs[0]
    assert job.status == JobStatus.DONE and job.error == "stop now" and job.exit_status is None
    assert job.chat_log == [] and job.turns == 0

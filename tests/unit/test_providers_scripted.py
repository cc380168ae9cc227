"""ScriptedProvider: order, cycling, exhaustion, reply functions, latency, determinism, cost."""

from __future__ import annotations

import asyncio
import time

import pytest

from statek.errors import ProviderError
from statek.providers import (
    ChatMessage,
    ChatReply,
    ChatRequest,
    Provider,
    ScriptedProvider,
    ToolCall,
    Usage,
    estimate_usage,
)


def request(text: str = "hello there", model: str = "m") -> ChatRequest:
    return ChatRequest(model=model, system="sys!", messages=(ChatMessage("user", text),))


async def contents(provider: ScriptedProvider, n: int) -> list[str]:
    return [(await provider.complete(request())).content for _ in range(n)]


async def test_default_answers_exit_ok() -> None:
    provider = ScriptedProvider()
    reply = await provider.complete(request())
    assert reply.content == "exit('ok')"
    assert reply.finish_reason == "stop"
    assert reply.raw_model == "m"
    assert isinstance(provider, Provider)
    assert provider.name == "scripted"


async def test_list_cycles() -> None:
    provider = ScriptedProvider(["a", "b", "c"])
    assert await contents(provider, 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert provider.calls == 7


async def test_single_string_is_one_reply_not_characters() -> None:
    assert await contents(ScriptedProvider("abc"), 2) == ["abc", "abc"]


async def test_exhaustion_without_cycle() -> None:
    provider = ScriptedProvider(["a", "b"], cycle=False)
    assert await contents(provider, 2) == ["a", "b"]
    with pytest.raises(ProviderError, match="script exhausted") as info:
        await provider.complete(request())
    assert info.value.retryable is False
    provider.reset()
    assert await contents(provider, 1) == ["a"]


def test_empty_cycling_script_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ScriptedProvider([])


async def test_empty_script_without_cycle_is_exhausted_at_once() -> None:
    with pytest.raises(ProviderError, match="script exhausted"):
        await ScriptedProvider([], cycle=False).complete(request())


async def test_chat_reply_items_pass_through_with_usage_filled() -> None:
    call = ToolCall("t1", "search", {"q": "x"})
    given = ChatReply("", tool_calls=(call,), finish_reason="tool_calls")
    with_usage = ChatReply("done", usage=Usage(1, 2))
    provider = ScriptedProvider([given, with_usage])
    first = await provider.complete(request())
    assert first.tool_calls == (call,)
    assert first.finish_reason == "tool_calls"
    assert first.usage == estimate_usage(request(), "")
    assert await provider.complete(request()) is with_usage


async def test_sync_function() -> None:
    provider = ScriptedProvider(lambda req: f"echo {req.messages[-1].content}")
    assert (await provider.complete(request("ping"))).content == "echo ping"


async def test_async_function() -> None:
    async def answer(req: ChatRequest) -> ChatReply:
        await asyncio.sleep(0)
        return ChatReply(req.model.upper())

    provider = ScriptedProvider(answer)
    reply = await provider.complete(request(model="gpt"))
    assert reply.content == "GPT"
    assert reply.usage is not None


async def test_function_errors_become_provider_errors() -> None:
    def boom(req: ChatRequest) -> str:
        raise KeyError("nope")

    def limited(req: ChatRequest) -> str:
        raise ProviderError("rate limited", status=429, retryable=True)

    with pytest.raises(ProviderError, match="reply function failed"):
        await ScriptedProvider(boom).complete(request())
    with pytest.raises(ProviderError, match="rate limited") as info:
        await ScriptedProvider(limited).complete(request())
    assert info.value.status == 429
    with pytest.raises(ProviderError, match="expected str or ChatReply"):
        await ScriptedProvider(lambda req: 42).complete(request())  # type: ignore[arg-type,return-value]


async def test_latency_is_awaited_and_concurrent() -> None:
    provider = ScriptedProvider(["x"], latency=0.05)
    started = time.perf_counter()
    replies = await asyncio.gather(*(provider.complete(request()) for _ in range(10)))
    elapsed = time.perf_counter() - started
    assert [r.content for r in replies] == ["x"] * 10
    assert 0.05 <= elapsed < 0.5  # slept, but the ten calls overlapped


async def test_zero_latency_never_yields_to_the_loop() -> None:
    provider = ScriptedProvider(["x"])
    coro = provider.complete(request())
    with pytest.raises(StopIteration) as info:
        coro.send(None)  # finished on the first step: no suspension point
    assert info.value.value.content == "x"


def test_negative_latency_rejected() -> None:
    with pytest.raises(ValueError, match="latency"):
        ScriptedProvider(latency=-1)


async def test_deterministic_replies_and_usage() -> None:
    first = ScriptedProvider(["a", "bb"])
    second = ScriptedProvider(["a", "bb"])
    runs = []
    for provider in (first, second):
        runs.append([await provider.complete(request(f"msg {i}")) for i in range(5)])
    assert runs[0] == runs[1]
    # chars/4 rounded up: "sys!" + "msg 0" = 9 chars -> 3 tokens; "a" -> 1 token.
    assert runs[0][0].usage == Usage(3, 1)


async def test_custom_usage_function() -> None:
    provider = ScriptedProvider(["abc"], usage=lambda req, text: Usage(len(req.messages), 99))
    assert (await provider.complete(request())).usage == Usage(1, 99)


async def test_record_requests_only_when_asked() -> None:
    quiet, recording = ScriptedProvider(), ScriptedProvider(record=True)
    req = request()
    for provider in (quiet, recording):
        await provider.complete(req)
        await provider.complete(req)
    assert quiet.requests == [] and quiet.calls == 2
    assert recording.requests == [req, req] and recording.calls == 2


async def test_aclose_is_harmless() -> None:
    provider = ScriptedProvider()
    await provider.aclose()
    assert (await provider.complete(request())).content == "exit('ok')"


async def test_zero_latency_cost_is_microseconds() -> None:
    provider = ScriptedProvider(["exit('ok')"])
    req = request()
    n = 20_000
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            await provider.complete(req)
        best = min(best, (time.perf_counter() - started) / n)
    # Typically ~1-2 µs; the bound is loose so slow CI machines do not flake.
    assert best < 50e-6, f"{best * 1e6:.1f} µs per call"

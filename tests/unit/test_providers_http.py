"""HTTP providers against the local stub: wire format, retries, error mapping, pooling."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterator
from typing import Any

import pytest

from statek.errors import ConfigurationError, ProviderError
from statek.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    OpenAICompatibleProvider,
    Provider,
    ToolCall,
    ToolSpec,
    Usage,
)
from statek.providers.http_base import HTTPProvider, error_text
from statek.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after

try:
    from tests.support.provider_stub import (
        ProviderStub,
        StubReply,
        anthropic_reply,
        closed_port,
        error_reply,
        openai_reply,
    )
except ImportError:  # tests/ itself on sys.path (pytest rootdir-less import)
    from provider_stub import (  # type: ignore[no-redef]
        ProviderStub,
        StubReply,
        anthropic_reply,
        closed_port,
        error_reply,
        openai_reply,
    )

pytestmark = pytest.mark.usefixtures("each_http_client")


class SleepRecorder:
    """Stands in for asyncio.sleep so retry waits are checked, not spent."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as server:
        yield server


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def make(kind: str, stub_url: str, sleeps: SleepRecorder | None = None, **kw: Any) -> HTTPProvider:
    options: dict[str, Any] = {
        "api_key": "sk-test",
        "timeout": 2.0,
        "max_retries": 3,
        "backoff_base": 0.001,
        "backoff_max": 5.0,
        "sleep": sleeps,
    }
    options.update(kw)
    if kind == "openai":
        return OpenAICompatibleProvider(stub_url + "/v1", **options)
    return AnthropicProvider(stub_url, **options)


def simple_request(model: str = "m-1") -> ChatRequest:
    return ChatRequest(model=model, system="be brief", messages=(ChatMessage("user", "hi"),))


WEATHER = ToolSpec(
    name="weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def tool_round_request() -> ChatRequest:
    call_a = ToolCall(id="c1", name="weather", arguments={"city": "Oslo"})
    call_b = ToolCall(id="c2", name="weather", arguments={"city": "Bergen"})
    return ChatRequest(
        model="m-2",
        system="sys",
        messages=(
            ChatMessage("user", "weather?"),
            ChatMessage("assistant", "", tool_calls=(call_a, call_b)),
            ChatMessage("tool", "rain", tool_call_id="c1"),
            ChatMessage("tool", "sun", tool_call_id="c2"),
        ),
        tools=(WEATHER,),
        max_tokens=100,
        temperature=0.25,
    )


# -- success paths and exact wire format -------------------------------------------------------


async def test_openai_success_reply_and_request(stub: ProviderStub) -> None:
    stub.script(StubReply(body=openai_reply("hello", prompt_tokens=21, completion_tokens=4)))
    async with make("openai", stub.url) as provider:
        reply = await provider.complete(simple_request())
    assert reply.content == "hello"
    assert reply.usage == Usage(21, 4)
    assert reply.finish_reason == "stop"
    assert reply.raw_model == "gpt-stub"
    assert reply.tool_calls == ()
    (sent,) = stub.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("statek/")
    assert sent.json() == {
        "model": "m-1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
    }


async def test_openai_tool_round_body(stub: ProviderStub) -> None:
    async with make("openai", stub.url) as provider:
        await provider.complete(tool_round_request())
    assert stub.requests[0].json() == {
        "model": "m-2",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Bergen"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
            {"role": "tool", "tool_call_id": "c2", "content": "sun"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Current weather for a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "max_tokens": 100,
        "temperature": 0.25,
    }


async def test_openai_parses_tool_calls(stub: ProviderStub) -> None:
    body = openai_reply(
        None,
        tool_calls=[("call_1", "weather", '{"city": "Oslo"}'), ("call_2", "noop", "")],
        finish_reason="tool_calls",
    )
    stub.script(StubReply(body=body))
    async with make("openai", stub.url) as provider:
        reply = await provider.complete(simple_request())
    assert reply.content == ""
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (
        ToolCall("call_1", "weather", {"city": "Oslo"}),
        ToolCall("call_2", "noop", {}),
    )


@pytest.mark.parametrize(("raw", "problem"), [
    ("{city: Oslo", "not valid JSON ("),
    ("1", "a JSON int, not an object"),
    ('["Oslo"]', "a JSON list, not an object"),
])
async def test_openai_unreadable_tool_arguments_are_the_calls_problem(
        raw: str, problem: str, stub: ProviderStub) -> None:
    """The model's slip in one call's arguments is for the model to fix (the step answers the
    call with the problem), not a malformed reply that fails the whole step."""
    stub.script(StubReply(body=openai_reply(None, tool_calls=[
        ("c", "weather", raw), ("d", "weather", '{"city": "Oslo"}')])))
    async with make("openai", stub.url) as provider:
        reply = await provider.complete(simple_request())
    bad, good = reply.tool_calls
    assert (bad.id, bad.name, dict(bad.arguments)) == ("c", "weather", {})
    assert bad.problem is not None and bad.problem.startswith(problem), bad.problem
    assert good == ToolCall("d", "weather", {"city": "Oslo"}) and good.problem is None
    assert len(stub.requests) == 1


async def test_anthropic_tool_input_not_an_object_is_the_calls_problem(
        stub: ProviderStub) -> None:
    stub.script(StubReply(body={"content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "oops"}]}))
    async with make("anthropic", stub.url) as provider:
        reply = await provider.complete(simple_request())
    (call,) = reply.tool_calls
    assert (call.id, call.name, dict(call.arguments)) == ("t", "f", {})
    assert call.problem == "a JSON str, not an object"


async def test_anthropic_success_reply_and_request(stub: ProviderStub) -> None:
    stub.script(StubReply(body=anthropic_reply("bonjour", input_tokens=30, output_tokens=9)))
    async with make("anthropic", stub.url) as provider:
        reply = await provider.complete(simple_request("claude-x"))
    assert reply.content == "bonjour"
    assert reply.usage == Usage(30, 9)
    assert reply.finish_reason == "end_turn"
    assert reply.raw_model == "claude-stub"
    (sent,) = stub.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == "sk-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json() == {
        "model": "claude-x",
        "max_tokens": 4096,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
    }


async def test_anthropic_tool_round_body_and_reply(stub: ProviderStub) -> None:
    stub.script(
        StubReply(
            body=anthropic_reply(
                "Checking.",
                tool_uses=[("tu_1", "weather", {"city": "Oslo"})],
                stop_reason="tool_use",
            )
        )
    )
    async with make("anthropic", stub.url) as provider:
        reply = await provider.complete(tool_round_request())
    assert reply.content == "Checking."
    assert reply.tool_calls == (ToolCall("tu_1", "weather", {"city": "Oslo"}),)
    assert reply.finish_reason == "tool_use"
    assert stub.requests[0].json() == {
        "model": "m-2",
        "max_tokens": 100,
        "system": "sys",
        "temperature": 0.25,
        "tools": [
            {
                "name": "weather",
                "description": "Current weather for a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}},
                    {
                        "type": "tool_use",
                        "id": "c2",
                        "name": "weather",
                        "input": {"city": "Bergen"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "rain"},
                    {"type": "tool_result", "tool_use_id": "c2", "content": "sun"},
                ],
            },
        ],
    }


async def test_anthropic_cache_tokens_count_as_input(stub: ProviderStub) -> None:
    body = anthropic_reply("x")
    body["usage"] = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 100,
        "output_tokens": 2,
    }
    stub.script(StubReply(body=body))
    async with make("anthropic", stub.url) as provider:
        reply = await provider.complete(simple_request())
    assert reply.usage == Usage(113, 2)


async def test_missing_usage_is_tolerated(stub: ProviderStub) -> None:
    body = openai_reply("x")
    del body["usage"]
    stub.script(StubReply(body=body))
    async with make("openai", stub.url) as provider:
        reply = await provider.complete(simple_request())
    assert reply.usage is None


async def test_extra_headers_no_key_and_base_url_slash(stub: ProviderStub) -> None:
    provider = OpenAICompatibleProvider(
        stub.url + "/v1/", extra_headers={"X-Title": "statek-tests"}, timeout=2.0
    )
    async with provider:
        await provider.complete(simple_request())
    sent = stub.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["x-title"] == "statek-tests"
    assert "authorization" not in sent.headers


async def test_empty_model_uses_provider_default(stub: ProviderStub) -> None:
    async with make("openai", stub.url, default_model="llama-3") as provider:
        await provider.complete(simple_request(model=""))
    assert stub.requests[0].json()["model"] == "llama-3"


def test_providers_satisfy_protocol() -> None:
    assert isinstance(OpenAICompatibleProvider("http://x"), Provider)
    assert isinstance(AnthropicProvider("http://x"), Provider)


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_retry_after_seconds_then_success(
    kind: str, stub: ProviderStub, sleeps: SleepRecorder
) -> None:
    stub.script(error_reply(429, "slow down", retry_after="2"))
    async with make(kind, stub.url, sleeps) as provider:
        reply = await provider.complete(simple_request())
    assert reply.content == "ok"
    assert sleeps.waits == [2.0]
    assert len(stub.requests) == 2


async def test_retry_after_http_date_and_cap(stub: ProviderStub, sleeps: SleepRecorder) -> None:
    in_three = email.utils.formatdate(time.time() + 3, usegmt=True)
    stub.script(
        error_reply(429, retry_after=in_three),
        error_reply(503, retry_after="600"),
    )
    async with make("openai", stub.url, sleeps, backoff_max=5.0) as provider:
        await provider.complete(simple_request())
    assert 1.0 < sleeps.waits[0] <= 3.0
    assert sleeps.waits[1] == 5.0  # capped by backoff_max


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(
    status: int, stub: ProviderStub, sleeps: SleepRecorder
) -> None:
    stub.script(error_reply(status))
    async with make("openai", stub.url, sleeps) as provider:
        assert (await provider.complete(simple_request())).content == "ok"
    assert len(stub.requests) == 2


async def test_500_then_503_then_success_with_real_sleep(stub: ProviderStub) -> None:
    stub.script(error_reply(500), error_reply(503))
    async with make("anthropic", stub.url, backoff_base=0.001, backoff_max=0.01) as provider:
        assert (await provider.complete(simple_request())).content == "ok"
    assert len(stub.requests) == 3


async def test_each_retry_of_a_failed_attempt_is_told_to_the_listener(
        stub: ProviderStub, monkeypatch: pytest.MonkeyPatch) -> None:
    """`retry.on_retry` (the metrics' provider_retries_total) hears every request sent
    again, by status; the provider's own retries were counted nowhere."""
    from statek.providers import retry

    heard: list[tuple[str, str]] = []
    monkeypatch.setattr(retry, "on_retry", lambda name, label: heard.append((name, label)))
    stub.script(error_reply(500), error_reply(503))
    async with make("openai", stub.url, backoff_base=0.001, backoff_max=0.01) as provider:
        assert (await provider.complete(simple_request())).content == "ok"
    assert heard == [("openai", "500"), ("openai", "503")]
    stub.script(*(error_reply(500) for _ in range(3)))
    async with make("openai", stub.url, backoff_base=0.001, backoff_max=0.01,
                    max_retries=2) as provider:
        with pytest.raises(ProviderError, match="gave up after 3 attempts"):
            await provider.complete(simple_request())
    assert heard[2:] == [("openai", "500"), ("openai", "500")]  # not the last: given up


async def test_backoff_grows_and_is_jittered(stub: ProviderStub, sleeps: SleepRecorder) -> None:
    stub.script(*(error_reply(500) for _ in range(3)))
    async with make("openai", stub.url, sleeps, backoff_base=1.0, backoff_max=3.0) as provider:
        await provider.complete(simple_request())
    first, second, third = sleeps.waits
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 2.0
    assert 1.5 <= third <= 3.0  # 4.0 capped to 3.0


async def test_gives_up_after_max_retries(stub: ProviderStub, sleeps: SleepRecorder) -> None:
    stub.script(*(error_reply(503, "overloaded") for _ in range(10)))
    async with make("openai", stub.url, sleeps, max_retries=2) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    error = info.value
    assert error.status == 503
    assert error.retryable is True
    assert "overloaded" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert len(stub.requests) == 3
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(
    kind: str, status: int, stub: ProviderStub, sleeps: SleepRecorder
) -> None:
    stub.script(error_reply(status, "your request is wrong"))
    async with make(kind, stub.url, sleeps) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    assert info.value.status == status
    assert info.value.retryable is False
    assert "your request is wrong" in str(info.value)
    assert f"HTTP {status}" in str(info.value)
    assert len(stub.requests) == 1
    assert sleeps.waits == []
    # a 404 says where it posted to: most often a base URL one segment off
    assert ("check the base URL" in str(info.value)) is (status == 404)


async def test_a_404_names_the_url_and_the_usual_mistake(stub: ProviderStub,
                                                         sleeps: SleepRecorder) -> None:
    """The common mistakes (an OpenAI base without /v1, an Anthropic base with it) gave
    only the server's `{"detail":"Not Found"}`."""
    stub.script(error_reply(404, "Not Found"), error_reply(404, "Not Found"))
    async with make("openai", stub.url, sleeps) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    assert str(info.value).endswith(
        f"(POST {stub.url}/v1/chat/completions: check the base URL (base_url, "
        "STATEK_OPENAI_BASE_URL); an OpenAI-compatible base URL usually ends in /v1)")
    async with make("anthropic", stub.url + "/v1", sleeps) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    assert str(info.value).endswith(
        f"(POST {stub.url}/v1/v1/messages: check the base URL (base_url, "
        "STATEK_ANTHROPIC_BASE_URL); an Anthropic base URL has no /v1 (the path /v1/messages "
        "is added))")
    # an unknown model is a 404 too: its text says so, and the base URL is not blamed
    stub.script(error_reply(404, "The model `gpt-typo` does not exist"))
    async with make("openai", stub.url, sleeps) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    assert "does not exist" in str(info.value) and "base URL" not in str(info.value)


async def test_long_error_text_is_truncated(stub: ProviderStub) -> None:
    stub.script(error_reply(400, "x" * 10_000))
    async with make("openai", stub.url) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.complete(simple_request())
    assert 500 <= len(str(info.value)) < 700


async def test_slow_reply_times_out_retries_then_fails(
    stub: ProviderStub, sleeps: SleepRecorder
) -> None:
    stub.script(StubReply(delay=3.0), StubReply(delay=3.0))
    started = time.perf_counter()
    async with make("openai", stub.url, sleeps, timeout=0.2, max_retries=1) as provider:
        with pytest.raises(ProviderError, match=r"no reply within 0\.2s") as info:
            await provider.complete(simple_request())
    assert time.perf_counter() - started < 2.0
    assert info.value.retryable is True
    assert info.value.status is None
    assert len(stub.requests) == 2


async def test_slow_reply_then_fast_succeeds(stub: ProviderStub, sleeps: SleepRecorder) -> None:
    stub.script(StubReply(delay=3.0))
    async with make("anthropic", stub.url, sleeps, timeout=0.2) as provider:
        assert (await provider.complete(simple_request())).content == "ok"
    assert len(stub.requests) == 2


async def test_dropped_connection_is_retried(stub: ProviderStub, sleeps: SleepRecorder) -> None:
    stub.script(StubReply(drop=True))
    async with make("openai", stub.url, sleeps) as provider:
        assert (await provider.complete(simple_request())).content == "ok"
    assert len(sleeps.waits) == 1


async def test_connection_refused(sleeps: SleepRecorder,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.providers import retry

    heard: list[tuple[str, str]] = []
    monkeypatch.setattr(retry, "on_retry", lambda name, label: heard.append((name, label)))
    url = f"http://127.0.0.1:{closed_port()}"
    async with make("anthropic", url, sleeps, max_retries=2) as provider:
        with pytest.raises(ProviderError, match=r"connection to .* failed") as info:
            await provider.complete(simple_request())
    assert info.value.retryable is True
    assert info.value.status is None
    assert len(sleeps.waits) == 2
    # the provider's retries and the step that gives up on its error use one label
    assert heard == [("anthropic", "connection")] * 2
    assert retry.failure_label(info.value) == "connection"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1", "127.0.0.1:8000/v1", "http://",
                                 "http://user:pw-99@:80/v1", "http://h:0/v1", "http://[::1/v1"])
def test_an_unusable_base_url_is_a_configuration_error(url: str) -> None:
    """Refused when the provider is made (so a job using it fails at once, naming the
    setting); as a failed request it was retried over three steps."""
    with pytest.raises(ConfigurationError, match=r"^openai: base URL .* "
                       r"\(STATEK_OPENAI_BASE_URL\) is not usable: it needs http:// or "
                       r"https:// and a host") as info:
        OpenAICompatibleProvider(url, "sk-x")
    assert "pw-99" not in str(info.value)
    with pytest.raises(ConfigurationError, match=r"\(STATEK_ANTHROPIC_BASE_URL\)"):
        AnthropicProvider(url, "sk-x")


# -- malformed replies -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", "[1, 2]", {"id": "x"}, {"choices": [], "content": "text"}],
    ids=["bad-json", "empty", "array", "no-fields", "wrong-types"],
)
async def test_malformed_replies_are_not_retried(
    kind: str, body: Any, stub: ProviderStub, sleeps: SleepRecorder
) -> None:
    stub.script(StubReply(body=body))
    async with make(kind, stub.url, sleeps) as provider:
        with pytest.raises(ProviderError, match=f"malformed reply from {kind}") as info:
            await provider.complete(simple_request())
    assert info.value.retryable is False
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [{"finish_reason": "stop"}]},
        {"choices": [{"message": {"content": 42}}]},
        {"choices": [{"message": {"content": "", "tool_calls": [{"id": "c"}]}}]},
        {"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},
    ],
)
async def test_openai_missing_nested_fields(body: Any, stub: ProviderStub) -> None:
    stub.script(StubReply(body=body))
    async with make("openai", stub.url) as provider:
        with pytest.raises(ProviderError, match="malformed reply from openai"):
            await provider.complete(simple_request())


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text"}],
        [{"type": "tool_use", "name": "f", "input": {}}],
        ["text"],
    ],
)
async def test_anthropic_missing_nested_fields(content: Any, stub: ProviderStub) -> None:
    stub.script(StubReply(body={"content": content}))
    async with make("anthropic", stub.url) as provider:
        with pytest.raises(ProviderError, match="malformed reply from anthropic"):
            await provider.complete(simple_request())


async def test_unencodable_request_fails_before_sending(stub: ProviderStub) -> None:
    request = ChatRequest(
        model="m",
        system="",
        messages=(ChatMessage("assistant", "", tool_calls=(ToolCall("c", "f", {"x": {1, 2}}),)),),
    )
    async with make("anthropic", stub.url) as provider:
        with pytest.raises(ProviderError, match="cannot be encoded"):
            await provider.complete(request)
    assert stub.requests == []


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_tool_message_needs_call_id(kind: str, stub: ProviderStub) -> None:
    request = ChatRequest(model="m", system="", messages=(ChatMessage("tool", "result"),))
    async with make(kind, stub.url) as provider:
        with pytest.raises(ProviderError, match="tool_call_id"):
            await provider.complete(request)
    assert stub.requests == []


# -- pooling and event loops -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_one_pooled_connection_reused(kind: str, stub: ProviderStub,
                                            each_http_client: str) -> None:
    async with make(kind, stub.url) as provider:
        assert provider.client is None  # lazy: nothing opened before the first call
        await provider.complete(simple_request())
        client = provider.client
        assert client is not None and client.name == each_http_client
        for _ in range(4):
            await provider.complete(simple_request())
        assert provider.client is client
    if each_http_client == "pyreqwest":
        # its pool takes a connection back on its own thread, after the reply is handed
        # over: on a loaded machine the next call can race it and open a second one
        assert stub.connections <= 2, stub.connections
    else:
        assert stub.connections == 1
        assert {r.connection for r in stub.requests} == {1}


async def test_concurrent_calls_share_client(stub: ProviderStub) -> None:
    async with make("openai", stub.url) as provider:
        replies = await asyncio.gather(*(provider.complete(simple_request()) for _ in range(20)))
        client = provider.client
        await provider.complete(simple_request())
        assert provider.client is client
    assert [r.content for r in replies] == ["ok"] * 20
    assert stub.connections <= 20


async def test_aclose_then_reuse_opens_new_client(stub: ProviderStub) -> None:
    provider = make("openai", stub.url)
    await provider.complete(simple_request())
    first = provider.client
    await provider.aclose()
    assert provider.client is None
    await provider.aclose()  # idempotent
    await provider.complete(simple_request())
    assert provider.client is not None and provider.client is not first
    await provider.aclose()
    assert stub.connections == 2


def test_new_event_loop_gets_new_client(stub: ProviderStub) -> None:
    provider = make("openai", stub.url)
    assert asyncio.run(provider.complete(simple_request())).content == "ok"
    assert asyncio.run(provider.complete(simple_request())).content == "ok"
    asyncio.run(provider.aclose())


def test_request_under_uvloop(stub: ProviderStub) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[str, str, bool]:
        stub.script(error_reply(503, retry_after="0"))
        async with make("openai", stub.url) as openai, make("anthropic", stub.url) as claude:
            a = await openai.complete(simple_request())
            b = await claude.complete(simple_request())
            loop_is_uv = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        return a.content, b.content, loop_is_uv

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == ("ok", "ok", True)
    assert len(stub.requests) == 3


# -- retry policy and error text, unit level ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (429, True), (500, True), (599, True)],
)
def test_is_retryable_status(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert parse_retry_after(header, now=now) == expected


def test_retry_policy_bounds() -> None:
    policy = RetryPolicy(max_retries=3, backoff_base=0.5, backoff_max=4.0)
    assert policy.backoff(0, lambda: 0.0) == 0.25
    assert policy.backoff(0, lambda: 1.0) == 0.5
    assert policy.backoff(3, lambda: 1.0) == 4.0
    assert policy.backoff(10_000, lambda: 1.0) == 4.0  # no overflow
    assert policy.delay(0, retry_after=100.0) == 4.0
    assert policy.delay(0, retry_after=1.0) == 1.0
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "bad key", "type": "auth"}}', "auth: bad key"),
        (b'{"error": {"message": "bad key"}}', "bad key"),
        (b'{"error": "plain"}', "plain"),
        (b"<html>gateway</html>", "<html>gateway</html>"),
        (b"", "(empty body)"),
    ],
)
def test_error_text(body: bytes, expected: str) -> None:
    assert error_text(body) == expected


def test_http_client_choice_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.errors import ConfigurationError
    from statek.providers import transports

    with pytest.raises(ConfigurationError, match="unknown HTTP client 'curl'"):
        OpenAICompatibleProvider("http://x", http_client="curl")
    monkeypatch.setattr(transports, "available_clients", lambda: ["asyncio", "aiohttp"])
    with pytest.raises(ConfigurationError, match=r"'pyreqwest' is not installed.*statek\[fast\]"):
        transports.resolve_client("pyreqwest")
    assert transports.resolve_client("auto") == "asyncio"


def test_auto_takes_the_own_client_whatever_is_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """statek's own HTTP/1.1 client spends the least worker CPU per call (W9): 'auto' takes
    it with or without pyreqwest; the libraries stay available by name."""
    from statek.providers import transports
    from statek.settings import StatekSettings

    monkeypatch.setattr(transports.importlib.util, "find_spec", lambda name: object())
    assert transports.available_clients() == ["asyncio", "pyreqwest", "aiohttp"]
    assert transports.resolve_client("auto") == "asyncio"
    assert transports.resolve_client("pyreqwest") == "pyreqwest"
    monkeypatch.setattr(transports.importlib.util, "find_spec", lambda name: None)
    assert transports.available_clients() == ["asyncio", "aiohttp"]
    assert transports.resolve_client("auto") == "asyncio"
    assert transports.resolve_client("aiohttp") == "aiohttp"
    assert StatekSettings(provider_http_client="asyncio").provider_http_client == "asyncio"


def test_registry_passes_the_http_client_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.providers import registry
    from statek.settings import StatekSettings

    settings = StatekSettings(provider_http_client="aiohttp")
    provider = registry._make_openai(settings)
    assert isinstance(provider, HTTPProvider) and provider.http_client == "aiohttp"


async def test_no_error_text_shows_a_secret(sleeps: SleepRecorder, each_http_client: str) -> None:
    """A server that answers with no HTTP at all: aiohttp's error repr quoted the request's
    headers, so `job.error`, the chat log and the worker log showed the API key; a password
    in the base URL was shown too. Each client's error is scrubbed of them."""
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\nHTTP/1.1 200 OK\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for kind, key, userinfo in (("openai", "sk-SUPERSECRET-12345", ""),
                                    ("anthropic", "sk-ant-SECRET-6789", ""),
                                    ("openai", "sk-SUPERSECRET-12345", "user:pw-HIDDEN-42@")):
            provider = make(kind, f"http://{userinfo}127.0.0.1:{port}", sleeps,
                            api_key=key, max_retries=0,
                            extra_headers={"X-Team-Token": "tok-PRIVATE-77"})
            async with provider:
                with pytest.raises(ProviderError) as info:
                    await provider.complete(simple_request())
            text = str(info.value)
            assert f"{kind}: " in text, text  # an error that still says what failed
            for secret in (key, "pw-HIDDEN-42", "tok-PRIVATE-77"):
                assert secret not in text, (each_http_client, text)
    finally:
        server.close()
        await server.wait_closed()


def test_scrub_hides_every_credential() -> None:
    provider = OpenAICompatibleProvider("https://u:p4ss-word@api.example/v1", "sk-abcdef12",
                                        extra_headers={"Api-Key": "k-1234567", "X-Trace": "t-1"})
    shown = provider.scrub("Bearer sk-abcdef12 k-1234567 t-1 sk-abcdef12 "
                           "https://u:p4ss-word@api.example/v1 http://tok_SECRET99@h:9/v1")
    # the header's whole value, then the key alone; a URL's user info by its place
    assert shown == "*** *** t-1 *** https://***@api.example/v1 http://***@h:9/v1"


def test_scrub_leaves_placeholder_keys_alone() -> None:
    """A key like "ollama" or "none" (a local server takes any) was replaced wherever it
    appeared: `connection to http://***:11434/v1 failed`."""
    provider = OpenAICompatibleProvider("http://ollama:11434/v1", "ollama")
    assert provider.scrub("connection to http://ollama:11434/v1 failed") == \
        "connection to http://ollama:11434/v1 failed"


async def test_a_call_waiting_for_a_connection_is_not_timed_out(stub: ProviderStub) -> None:
    """The provider timeout is the server's to answer in. It ran while a call queued for
    one of `max_connections`: a call the server was still answering timed out and was sent
    again (paid twice; a new user's trial saw 212 requests for 100 calls). Four calls over
    one connection, each answered in 0.4 s, under a 1 s timeout: four requests."""
    stub.script(*(StubReply(body=openai_reply("ok"), delay=0.4) for _ in range(4)))
    async with make("openai", stub.url, timeout=1.0, max_retries=0,
                    max_connections=1) as provider:
        replies = await asyncio.gather(*(provider.complete(simple_request()) for _ in range(4)))
    assert [reply.content for reply in replies] == ["ok"] * 4
    assert len(stub.requests) == 4


def test_an_openai_refusal_is_the_reply_not_an_empty_one() -> None:
    provider = OpenAICompatibleProvider("http://127.0.0.1:9/v1", "sk-x")
    reply = provider.parse_reply({"choices": [{"message": {
        "content": None, "refusal": "I can't help with that."}, "finish_reason": "stop"}]})
    assert reply.content == "(the model refused: I can't help with that.)"


async def test_a_body_cut_off_mid_way_is_retried_by_every_client(
        sleeps: SleepRecorder, each_http_client: str) -> None:
    """pyreqwest's BodyDecodeError for a connection closed mid-body ended the call at once;
    the other clients retried it as the transient failure it is."""
    requests: list[bytes] = []

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.read(65536))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 400\r\n\r\n{\"choices\": [")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make("openai", f"http://127.0.0.1:{port}", sleeps,
                        max_retries=2) as provider:
            with pytest.raises(ProviderError, match="gave up after 3 attempts"):
                await provider.complete(simple_request())
    finally:
        server.close()
        await server.wait_closed()
    assert len(requests) == 3, each_http_client

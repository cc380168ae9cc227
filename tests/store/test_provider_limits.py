"""What an HTTP provider refuses: calls to a hosted API with no key (before sending), reply
bodies over `max_response_bytes` after decompression (a real gzip bomb included), stacked
encodings, and token counts no real reply carries."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import statek
from statek.errors import ConfigurationError, MissingAPIKeyError, ProviderError
from statek.executors.utils import run_job_step
from statek.models.status import JobStatus
from statek.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    OpenAICompatibleProvider,
    Usage,
    aclose_all,
    add_provider,
    get_provider,
    remove_provider,
    reset_registry,
)
from statek.providers.http_base import HTTPProvider
from tests.support.provider_stub import ProviderStub, StubReply, anthropic_reply, openai_reply

pytestmark = pytest.mark.usefixtures("each_http_client")

REQUEST = ChatRequest(model="m", system="", messages=(ChatMessage("user", "hi"),))


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as server:
        yield server


def provider(kind: str, base_url: str | None, api_key: str | None = None,
             **options: Any) -> HTTPProvider:
    options.setdefault("max_retries", 3)
    options.setdefault("timeout", 10.0)
    cls = OpenAICompatibleProvider if kind == "openai" else AnthropicProvider
    return cls(base_url, api_key, **options)


# --- a hosted API with no key ----------------------------------------------------------------


def hosted(kind: str, base_url: str | None, stub: ProviderStub, api_key: str | None = None,
           **options: Any) -> HTTPProvider:
    """A provider configured for the vendor's host whose requests go to the local stub instead
    (same endpoint path): the key check sees the hosted URL, the stub sees what is sent."""
    p = provider(kind, base_url, api_key, **options)
    p._url = stub.url + urlsplit(p.url).path
    return p


HOSTED = [("openai", "https://api.openai.com/v1", "STATEK_OPENAI_API_KEY"),
          ("openai", "https://API.OpenAI.com/v1/", "STATEK_OPENAI_API_KEY"),
          ("anthropic", None, "STATEK_ANTHROPIC_API_KEY"),
          ("anthropic", "https://api.anthropic.com", "STATEK_ANTHROPIC_API_KEY")]


@pytest.mark.parametrize(("kind", "base_url", "setting"), HOSTED)
async def test_hosted_api_without_key_fails_before_sending(kind: str, base_url: str | None,
                                                           setting: str,
                                                           stub: ProviderStub) -> None:
    async with hosted(kind, base_url, stub) as p:
        with pytest.raises(MissingAPIKeyError) as info:
            await p.complete(REQUEST)
    assert stub.requests == []
    assert setting in str(info.value) and "no API key" in str(info.value)
    assert info.value.retryable is False
    assert isinstance(info.value, ProviderError) and isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize(("kind", "base_url", "setting"), HOSTED)
async def test_hosted_api_with_key_sends(kind: str, base_url: str | None, setting: str,
                                         stub: ProviderStub) -> None:
    async with hosted(kind, base_url, stub, "k-1") as p:
        assert (await p.complete(REQUEST)).content == "ok"
    assert len(stub.requests) == 1


@pytest.mark.parametrize(("kind", "header"), [("openai", "Authorization"),
                                              ("anthropic", "X-Api-Key"),
                                              ("anthropic", "authorization")])
async def test_auth_header_given_as_extra_header_counts_as_a_key(kind: str, header: str,
                                                                  stub: ProviderStub) -> None:
    async with hosted(kind, "https://api.openai.com/v1" if kind == "openai" else None, stub,
                      extra_headers={header: "secret"}) as p:
        await p.complete(REQUEST)
    assert stub.requests[0].headers[header.lower()] == "secret"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_local_server_needs_no_key(kind: str, stub: ProviderStub) -> None:
    async with provider(kind, stub.url + ("/v1" if kind == "openai" else "")) as p:
        assert (await p.complete(REQUEST)).content == "ok"
    sent = stub.requests[0].headers
    assert "authorization" not in sent and "x-api-key" not in sent


@pytest.fixture
async def clean_registry() -> AsyncIterator[None]:
    reset_registry()
    yield
    await aclose_all()
    reset_registry()


async def test_builtin_openai_without_key_says_which_setting(clean_registry: None) -> None:
    statek.providers.configure_builtins(statek.StatekSettings.build(openai_api_key=None))
    with pytest.raises(MissingAPIKeyError, match="STATEK_OPENAI_API_KEY"):
        await get_provider("openai").complete(REQUEST)


# --- the reply body bound -----------------------------------------------------------------

BODY = json.dumps(openai_reply("a" * 3000)).encode()


@pytest.mark.parametrize(("limit", "fits"), [(len(BODY), True), (len(BODY) - 1, False)])
async def test_body_limit_is_exact(stub: ProviderStub, limit: int, fits: bool) -> None:
    stub.script(StubReply(body=BODY))
    async with provider("openai", stub.url, max_response_bytes=limit) as p:
        if fits:
            assert (await p.complete(REQUEST)).content == "a" * 3000
            return
        with pytest.raises(ProviderError, match=f"max_response_bytes={limit:,}") as info:
            await p.complete(REQUEST)
    assert info.value.retryable is False and len(stub.requests) == 1


async def test_limit_counts_decoded_bytes(stub: ProviderStub) -> None:
    """A gzip body far under the limit on the wire but over it decoded fails; one that fits
    decoded is read as usual."""
    packed = gzip.compress(BODY)
    assert len(packed) < 1000 < len(BODY)
    stub.script(StubReply(body=packed, headers={"content-encoding": "gzip"}),
                StubReply(body=packed, headers={"content-encoding": "gzip"}))
    async with provider("openai", stub.url, max_response_bytes=2000) as p:
        with pytest.raises(ProviderError, match=r"max_response_bytes=2,000.*'gzip'"):
            await p.complete(REQUEST)
    async with provider("openai", stub.url, max_response_bytes=len(BODY)) as p:
        assert (await p.complete(REQUEST)).content == "a" * 3000


async def test_oversized_error_body_is_not_retried(stub: ProviderStub) -> None:
    stub.script(StubReply(status=503, body=b"x" * 10_000))
    async with provider("openai", stub.url, max_response_bytes=1000) as p:
        with pytest.raises(ProviderError, match="max_response_bytes=1,000") as info:
            await p.complete(REQUEST)
    assert info.value.status == 503 and len(stub.requests) == 1


async def test_stacked_encodings_are_refused(stub: ProviderStub) -> None:
    """Each gzip layer can inflate ~1000x inside one read: only one layer is accepted."""
    stub.script(StubReply(body=gzip.compress(gzip.compress(BODY)),
                          headers={"content-encoding": "gzip, gzip"}))
    async with provider("openai", stub.url) as p:
        with pytest.raises(ProviderError, match="compressed 2 times") as info:
            await p.complete(REQUEST)
    assert info.value.retryable is False


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(("coding", "pack"), [
    ("gzip", gzip.compress), ("x-gzip", gzip.compress), ("GZIP", gzip.compress),
    ("deflate", zlib.compress), ("deflate", _raw_deflate), ("identity", lambda b: b),
    ("identity, gzip", gzip.compress),
])
async def test_accepted_encodings_decode(stub: ProviderStub, coding: str, pack: Any) -> None:
    stub.script(StubReply(body=pack(BODY), headers={"content-encoding": coding}))
    async with provider("openai", stub.url, max_response_bytes=len(BODY)) as p:
        assert (await p.complete(REQUEST)).content == "a" * 3000
    assert stub.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(("coding", "body", "why"), [
    ("br", b"\x1b\x00", "content-encoding 'br' is not supported"),
    ("compress", b"\x1f\x9d", "content-encoding 'compress' is not supported"),
    ("gzip", b"not gzip at all", "not valid gzip data"),
    ("deflate", b"\xff\xff\xff\xff", "not valid deflate data"),
])
async def test_undecodable_bodies_are_refused(stub: ProviderStub, coding: str, body: bytes,
                                              why: str) -> None:
    stub.script(StubReply(body=body, headers={"content-encoding": coding}))
    async with provider("openai", stub.url) as p:
        with pytest.raises(ProviderError, match=why) as info:
            await p.complete(REQUEST)
    assert info.value.retryable is False and len(stub.requests) == 1


def test_limit_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        provider("openai", "http://127.0.0.1:1", max_response_bytes=0)


INFLATED = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """512 MiB of zeros, gzip-compressed to about half a megabyte."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(INFLATED // len(zeros))]
    parts.append(packer.flush())
    return b"".join(parts)


BOMB_CLIENT = textwrap.dedent("""
    import asyncio, json, resource, sys
    from statek.errors import ProviderError
    from statek.providers import ChatMessage, ChatRequest, OpenAICompatibleProvider

    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def main():
        request = ChatRequest("m", "", (ChatMessage("user", "hi"),))
        provider = OpenAICompatibleProvider(sys.argv[1], None, max_retries=0, timeout=60,
                                            max_response_bytes=1024 * 1024)
        await provider.complete(request)  # warm: client, TLS context, JSON
        before = peak_kib()
        try:
            await provider.complete(request)
            error = None
        except ProviderError as exc:
            error = str(exc)
        await provider.aclose()
        print(json.dumps({"error": error, "grew_kib": peak_kib() - before}))

    asyncio.run(main())
""")


def test_gzip_bomb_fails_with_memory_bounded(stub: ProviderStub, gzip_bomb: bytes) -> None:
    stub.script(StubReply(), StubReply(body=gzip_bomb, headers={"content-encoding": "gzip"}))
    done = subprocess.run([sys.executable, "-c", BOMB_CLIENT, stub.url], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "max_response_bytes=1,048,576" in result["error"]
    # the whole bomb is 512 MiB, and inflating even one 64 KiB network read of it in full
    # would take ~64 MiB: memory must stay near the 1 MiB bound instead
    assert result["grew_kib"] < 32 * 1024, result


# --- token counts -------------------------------------------------------------------------

BAD_COUNTS = [-1, 1.5, 7.0, True, False, 10**9 + 1, 10**15, "12", [3], {"n": 1}]


USAGE_FIELDS = [("openai", f) for f in ("prompt_tokens", "completion_tokens")] + [
    ("anthropic", f) for f in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                               "cache_creation_input_tokens")]


@pytest.mark.parametrize("value", BAD_COUNTS)
@pytest.mark.parametrize(("kind", "field"), USAGE_FIELDS)
async def test_impossible_token_counts_are_a_malformed_reply(stub: ProviderStub, kind: str,
                                                             field: str, value: Any) -> None:
    body = openai_reply("x") if kind == "openai" else anthropic_reply("x")
    body["usage"][field] = value
    stub.script(StubReply(body=body))
    async with provider(kind, stub.url) as p:
        with pytest.raises(ProviderError, match=f"malformed usage: '{field}'") as info:
            await p.complete(REQUEST)
    assert info.value.retryable is False and len(stub.requests) == 1


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_usage_that_is_not_an_object_is_malformed(stub: ProviderStub, kind: str) -> None:
    body = openai_reply("x") if kind == "openai" else anthropic_reply("x")
    body["usage"] = [1, 2]
    stub.script(StubReply(body=body))
    async with provider(kind, stub.url) as p:
        with pytest.raises(ProviderError, match="malformed usage: expected an object"):
            await p.complete(REQUEST)


async def test_valid_token_counts_are_accepted(stub: ProviderStub) -> None:
    top = openai_reply("x", prompt_tokens=10**9, completion_tokens=0)
    nulls = openai_reply("x")
    nulls["usage"] = {"prompt_tokens": None, "completion_tokens": 4}
    claude = anthropic_reply("x")
    claude["usage"] = {"input_tokens": 5, "cache_read_input_tokens": None, "output_tokens": 6}
    stub.script(StubReply(body=top), StubReply(body=nulls), StubReply(body=claude))
    async with provider("openai", stub.url) as p:
        assert (await p.complete(REQUEST)).usage == Usage(10**9, 0)
        assert (await p.complete(REQUEST)).usage == Usage(0, 4)
    async with provider("anthropic", stub.url) as p:
        assert (await p.complete(REQUEST)).usage == Usage(5, 6)


async def test_max_tokens_triggers_after_a_malformed_usage(api: statek.StatekClientAPI,
                                                           agent: statek.Agent,
                                                           stub: ProviderStub) -> None:
    """A negative count used to be summed in, so the budget could never be reached; now the
    reply is a recorded failure and the next honest count ends the job on its budget."""
    stub.script(StubReply(body=openai_reply("x = 1", prompt_tokens=-10**6)),
                StubReply(body=openai_reply("x = 2", prompt_tokens=150)))
    metered = provider("openai", stub.url, max_retries=0)
    add_provider("metered", metered)
    try:
        job = api.submit_new_job(agent, {}, provider="metered", max_tokens=100)
        assert await run_job_step(job) is False
        (error,) = [e["message"] for e in job.chat_log if e["kind"] == "error"]
        assert "malformed usage: 'prompt_tokens' is -1000000" in error
        assert job.turns == 0 and job.provider_failures == 1
        assert await run_job_step(job) is True
    finally:
        remove_provider("metered")
        await metered.aclose()
    assert job.status == JobStatus.DONE
    assert job.error == "harness: 157 tokens reached max_tokens=100"

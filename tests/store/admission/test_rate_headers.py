"""Rate-limit headers as providers surface them, and the settings and estimator around them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from statek.admission import estimate, registry
from statek.admission.call import call_order
from statek.errors import ConfigurationError
from statek.providers import AnthropicProvider, OpenAICompatibleProvider, ScriptedProvider
from statek.providers.ratelimit import (
    DEFER_RATE_LIMITS,
    RateLimitedError,
    RateLimitInfo,
    parse_duration,
    parse_rate_limits,
    rate_limit_headers,
)
from statek.providers.types import ChatMessage, ChatRequest, ToolSpec
from statek.settings import StatekSettings
from tests.support import admission_harness as harness

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.25", 0.25),
    ("soon", None), ("1s junk", None), ("-3", None),
])
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_headers() -> None:
    info = parse_rate_limits({
        "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
    }, now=NOW)
    assert info == RateLimitInfo(500, 499, pytest.approx(0.12), 30000, 0, 360.0)
    assert info is not None and info.pause() == 360.0  # the exhausted dimension's reset


def test_anthropic_headers_and_the_input_output_variant() -> None:
    reset = (datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=30)).isoformat()
    both = parse_rate_limits({
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "7",
        "anthropic-ratelimit-requests-reset": reset.replace("+00:00", "Z"),
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "1000",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "500",
        "retry-after": "12",
    }, now=NOW)
    assert both is not None
    assert (both.requests_limit, both.requests_remaining) == (50, 7)
    assert both.requests_reset == pytest.approx(30.0)
    assert (both.tokens_limit, both.tokens_remaining) == (48000, 1500)  # summed
    assert both.pause() == 12.0  # Retry-After wins


def test_only_rate_headers_are_kept_and_none_without_them() -> None:
    items = [("Content-Type", "json"), ("X-RateLimit-Limit-Tokens", "9")]
    assert rate_limit_headers(items) == {"x-ratelimit-limit-tokens": "9"}
    assert rate_limit_headers([("server", "x")]) is None
    assert rate_limit_headers([], "3") == {"retry-after": "3"}
    assert parse_rate_limits(None) is None
    bad = parse_rate_limits({"x-ratelimit-limit-tokens": "lots"}, now=NOW)
    assert bad == RateLimitInfo()  # unreadable values are ignored, not trusted


def _request() -> ChatRequest:
    return ChatRequest("m", "system text", (ChatMessage("user", "hello there"),), max_tokens=8)


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_providers_report_headers_and_429s(style: str) -> None:
    """Through the mock server: a reply carries the parsed limits; a 429 under
    DEFER_RATE_LIMITS is raised at once (no sleep, no retry) with the server's limits."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run(url: str) -> None:
        kind = AnthropicProvider if style == "anthropic" else OpenAICompatibleProvider
        base = url if style == "anthropic" else url + "/v1"
        async with kind(base, "key-1", max_retries=3, sleep=sleep) as provider:
            reply = await provider.complete(_request())
            assert reply.rate_limits is not None
            assert reply.rate_limits.requests_limit == 1
            assert reply.rate_limits.requests_remaining == 0
            token = DEFER_RATE_LIMITS.set(True)
            try:
                with pytest.raises(RateLimitedError) as refused:
                    await provider.complete(_request())
            finally:
                DEFER_RATE_LIMITS.reset(token)
            assert sleeps == []
            assert refused.value.status == 429 and refused.value.rate_limits is not None
            assert refused.value.rate_limits.retry_after == pytest.approx(60.0, abs=1.0)
            with pytest.raises(RateLimitedError, match="gave up after 4 attempts"):
                await provider.complete(_request())  # not deferred: its own retries
            assert len(sleeps) == 3

    with harness.mock_server("--window", "60", "--rpm", "1", "--style", style) as url:
        asyncio.run(run(url))


def test_settings_name_a_bad_rate_limit() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown keys \['rps'\]"):
        StatekSettings.build(rate_limits={"openai/gpt": {"rps": 3}})
    with pytest.raises(ConfigurationError, match="must be > 0"):
        StatekSettings.build(rate_limits={"openai/gpt": {"tpm": 0}})


def test_most_specific_limits_win() -> None:
    table = {"openai/a": {"rpm": 1}, "openai/*": {"rpm": 2}, "anthropic": {"rpm": 3},
             "*": {"tpm": 4, "concurrency": 5}}
    found = [registry.limits_for(table, p, m, 60.0) for p, m in
             [("openai", "a"), ("openai", "b"), ("anthropic", "c"), ("local", "d")]]
    assert [f.requests if f else None for f in found] == [1, 2, 3, None]
    assert found[3] is not None and (found[3].tokens, found[3].concurrency) == (4, 5)
    assert registry.limits_for({}, "openai", "a", 60.0) is None


def test_no_limits_means_no_limiter_and_scripted_is_never_learned(
        statek_store: str) -> None:
    import statek

    async def check() -> None:
        assert registry.limiter_for(ScriptedProvider(), "m") is None
        statek.init(StatekSettings.build(rate_limit_learn=True))
        assert registry.limiter_for(ScriptedProvider(), "m") is None  # no headers to learn
        http = OpenAICompatibleProvider("http://127.0.0.1:9/v1", "k", max_connections=7)
        limiter = registry.limiter_for(http, "m")
        assert limiter is not None and limiter.probing and limiter.concurrency == 7
        assert registry.limiter_for(http, "m") is limiter  # shared, not remade
    asyncio.run(check())


def test_estimate_is_chars_over_four_plus_the_output_allowed() -> None:
    request = ChatRequest("m", "s" * 40, (ChatMessage("user", "u" * 39),),
                          tools=(ToolSpec("t", "d", {}),), max_tokens=100)
    assert estimate.estimate_tokens(request) == 21 + 4 * 2 + 32 + 100
    unbounded = ChatRequest("m", "", ())
    assert estimate.estimate_tokens(unbounded) == 4 + estimate.DEFAULT_OUTPUT_TOKENS


def test_estimator_setting_is_loaded_or_refused_clearly() -> None:
    assert estimate.load_estimator(None) is estimate.estimate_tokens
    assert estimate.load_estimator("statek.admission.estimate:estimate_tokens") is (
        estimate.estimate_tokens)
    with pytest.raises(ConfigurationError, match="'module:function'"):
        estimate.load_estimator("no_colon")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        estimate.load_estimator("statek.admission.estimate:missing")
    with pytest.raises(ConfigurationError, match="not callable"):
        estimate.load_estimator("statek.admission.estimate:CHARS_PER_TOKEN")


def test_priority_and_tenant_come_from_metadata() -> None:
    assert call_order({}) == (0, "")
    assert call_order({"PRIORITY": 3, "TENANT": "acme"}) == (3, "acme")
    with pytest.raises(ConfigurationError, match="PRIORITY must be an int"):
        call_order({"PRIORITY": "high"})
    with pytest.raises(ConfigurationError, match="got 1000000000"):
        call_order({"PRIORITY": 10**9})
    with pytest.raises(ConfigurationError, match="TENANT must be a string"):
        call_order({"TENANT": 7})

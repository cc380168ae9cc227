"""`admitted_call`, the hook around the provider call: settle, release, re-queue after 429s."""

from __future__ import annotations

import asyncio

import pytest

import statek
from statek.admission import registry
from statek.admission.call import admitted_call
from statek.errors import ProviderError
from statek.providers import OpenAICompatibleProvider, retry
from statek.providers.ratelimit import DEFER_RATE_LIMITS, RateLimitedError, RateLimitInfo
from statek.providers.types import ChatMessage, ChatReply, ChatRequest, Usage
from statek.settings import StatekSettings

REQUEST = ChatRequest("m", "s" * 400, (ChatMessage("user", "go"),), max_tokens=50)


@pytest.fixture
def provider(statek_store: str) -> OpenAICompatibleProvider:
    statek.init(StatekSettings.build(rate_limits={"bench/m": {"tpm": 1_000}},
                                     rate_limit_max_refusals=2))
    return OpenAICompatibleProvider("http://127.0.0.1:9/v1", "k", name="bench")


def test_a_reply_settles_its_usage_and_the_429s_requeue_until_the_limit(
        provider: OpenAICompatibleProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    deferred: list[bool] = []
    retried: list[tuple[str, str]] = []  # what provider_retries_total counts
    monkeypatch.setattr(retry, "on_retry", lambda name, label: retried.append((name, label)))

    async def run() -> None:
        limiter = registry.limiter_for(provider, "m")
        assert limiter is not None and limiter.tokens is not None

        async def answer() -> ChatReply:
            deferred.append(DEFER_RATE_LIMITS.get())
            return ChatReply("ok", usage=Usage(100, 20))
        await admitted_call(limiter, REQUEST, {}, answer)
        assert limiter.in_flight == 0 and limiter.reserved == 0
        # the usage is charged, not the estimate (~170); 2% headroom, ~17 tokens a second back
        assert limiter.tokens.level == pytest.approx(980 - 120, abs=10)

        async def refused() -> ChatReply:
            raise RateLimitedError("429", rate_limits=RateLimitInfo(retry_after=0.001))
        with pytest.raises(RateLimitedError, match=r"^429 \(refused 3 times in a row; "
                           r"rate_limit_max_refusals=2, STATEK_RATE_LIMIT_MAX_REFUSALS\)$"):
            await admitted_call(limiter, REQUEST, {"PRIORITY": 1}, refused)
        assert limiter.refused == 3  # the first try and max_refusals=2 more
        assert retried == [("bench", "429")] * 2  # the refusal that ends it is not re-sent
        assert limiter.in_flight == 0 and limiter.reserved == 0

        async def broken() -> ChatReply:
            raise ProviderError("HTTP 500", status=500)
        with pytest.raises(ProviderError, match="500"):
            await admitted_call(limiter, REQUEST, {}, broken)
        assert limiter.in_flight == 0 and limiter.reserved == 0
    asyncio.run(run())
    assert deferred == [True] and DEFER_RATE_LIMITS.get() is False


def test_the_limiters_are_in_the_metrics(provider: OpenAICompatibleProvider) -> None:
    """A key paused after a 429 and calls queued for admission showed nowhere."""
    pytest.importorskip("prometheus_client")
    from statek.observability import metrics

    async def run() -> None:
        limiter = registry.limiter_for(provider, "m")
        assert limiter is not None

        async def refused() -> ChatReply:
            raise RateLimitedError("429", rate_limits=RateLimitInfo(retry_after=30.0))
        waiting = asyncio.ensure_future(admitted_call(limiter, REQUEST, {}, refused))
        await asyncio.sleep(0)  # the first try is refused: the call waits out the pause
        text = metrics.render().decode()
        assert 'statek_admission_refused_total{limiter="bench/m"} 1.0' in text
        assert 'statek_admission_queued{limiter="bench/m"} 1.0' in text
        paused = next(line for line in text.splitlines()
                      if line.startswith('statek_admission_paused_seconds{limiter="bench/m"}'))
        assert 29.0 < float(paused.split()[-1]) <= 30.0
        waiting.cancel()
    asyncio.run(run())

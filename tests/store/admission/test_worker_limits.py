"""Admission control through a real worker (`run_jobs_loop`) against the mock server process
(`mock_llm_server.py`), which enforces requests and tokens per window and answers 429.

Scaled down in time: the providers' minute is a 2-second window (`rate_limit_window`), with
the issue's limits of 600 requests and 60,000 tokens per window; each job makes one call of
about 390 tokens, so tokens bind (~155 calls per window) and 2,000 jobs take ~13 windows.
STATEK_ADMISSION_JOBS changes the number of jobs (CI default: 2,000).
"""

from __future__ import annotations

import os

import pytest

import statek
from tests.support import admission_harness as harness

JOBS = int(os.environ.get("STATEK_ADMISSION_JOBS", "2000"))
WINDOW = 2.0
RPM, TPM = 600, 60_000
PADDING = "Context for the task. " * 44  # with statek's system prompt: ~390 tokens a call
MIN_UTILISATION = 0.90


def _limits(**extra: object) -> dict[str, object]:
    return {"rate_limit_window": WINDOW, "rate_limit_headroom": 0.05, **extra}


def _server(style: str = "openai", headers: str = "always") -> object:
    return harness.mock_server("--window", str(WINDOW), "--rpm", str(RPM), "--tpm", str(TPM),
                               "--style", style, "--headers", headers)


def _refused_late(seen: list[list[object]]) -> list[list[object]]:
    return [entry for entry in seen if entry[1] == 429 and float(entry[0]) >= WINDOW]  # type: ignore[arg-type]


def test_configured_limits_fill_the_token_limit_without_refusals(
        api: statek.StatekClientAPI) -> None:
    with _server() as url:
        harness.use_provider(url, "configured")
        harness.bind_settings(**_limits(rate_limits={
            f"{harness.PROVIDER}/m": {"rpm": RPM, "tpm": TPM}}))
        agent = statek.Agent("bulk", "bulk worker. " + PADDING)
        harness.submit(api, agent, JOBS)
        harness.run_worker(JOBS + 16)
        seen = harness.report(url, "configured")
    assert len(harness.served(seen)) == JOBS
    assert _refused_late(seen) == []
    assert harness.utilisation(seen, WINDOW, TPM) >= MIN_UTILISATION
    # the server charged what the limiter settled: never more than the limit per window
    assert harness.utilisation(seen, WINDOW, TPM) <= 1.05


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_limits_learned_from_headers(api: statek.StatekClientAPI, style: str) -> None:
    """Nothing configured: the first reply's headers teach the limits (one call probes)."""
    jobs = max(JOBS // 2, 400)
    with _server(style) as url:
        harness.use_provider(url, f"learn-{style}", style)
        harness.bind_settings(**_limits(rate_limit_learn=True))
        agent = statek.Agent("bulk", "bulk worker. " + PADDING)
        harness.submit(api, agent, jobs)
        harness.run_worker(jobs + 16)
        seen = harness.report(url, f"learn-{style}")
    assert len(harness.served(seen)) == jobs
    assert _refused_late(seen) == []
    assert harness.utilisation(seen, WINDOW, TPM) >= MIN_UTILISATION


def test_a_429_shrinks_limits_set_too_high(api: statek.StatekClientAPI) -> None:
    """Settings claim twice the server's limit, and the server tells its limits only with a
    429: the first burst is refused in part, the 429s' headers lower the limit and pause the
    key (the calls queue again), and no request is refused after the first window."""
    jobs = max(JOBS // 2, 400)
    with _server(headers="on-429") as url:
        harness.use_provider(url, "too-high")
        harness.bind_settings(**_limits(rate_limits={
            f"{harness.PROVIDER}/m": {"rpm": RPM * 2, "tpm": TPM * 2}}))
        agent = statek.Agent("bulk", "bulk worker. " + PADDING)
        harness.submit(api, agent, jobs)
        harness.run_worker(jobs + 16)
        seen = harness.report(url, "too-high")
    assert len(harness.served(seen)) == jobs
    assert any(entry[1] == 429 for entry in seen)  # the settings were wrong at first
    assert _refused_late(seen) == []
    assert harness.utilisation(seen, WINDOW, TPM) >= MIN_UTILISATION


# Order tests: one call in flight at a time, and the server holds the first one for 2 s, so
# every job's call is queued in the limiter before the second is admitted: from then on the
# queue's order is the order the server sees. (The worker's launch order is its own: the
# tests try both submission orders.) SLACK covers calls admitted before the rest queued.
ORDER_WINDOW, ORDER_RPM, FIRST_LATENCY, SLACK = 1.0, 300, 2.0, 5


def _order_server() -> object:
    return harness.mock_server("--window", str(ORDER_WINDOW), "--rpm", str(ORDER_RPM),
                               "--tpm", "10000000", "--first-latency", str(FIRST_LATENCY))


def _order_settings() -> None:
    harness.bind_settings(rate_limit_window=ORDER_WINDOW, rate_limits={
        f"{harness.PROVIDER}/m": {"rpm": ORDER_RPM, "concurrency": 1}})


@pytest.mark.parametrize("high_first", [False, True])
def test_higher_priority_is_served_first(api: statek.StatekClientAPI, high_first: bool) -> None:
    """Both submission orders: whichever the worker launches first, high goes first."""
    low, high = 200, 200
    with _order_server() as url:
        harness.use_provider(url, "priority")
        _order_settings()
        agent = statek.Agent("orders", "orders worker.")
        groups = [("low", low, 0), ("high", high, 5)]
        for tag, count, priority in (groups[::-1] if high_first else groups):
            harness.submit(api, agent, count, tag=tag, PRIORITY=priority)
        harness.run_worker(low + high + 16)
        tags = [entry[3] for entry in harness.served(harness.report(url, "priority"))]
    assert sorted(tags) == ["high"] * high + ["low"] * low
    last_high = max(i for i, tag in enumerate(tags) if tag == "high")
    # FIFO would put every low job before every high one in one of the two orders
    assert tags[:last_high].count("low") <= SLACK, tags[:last_high + 1]


@pytest.mark.parametrize("flood_first", [False, True])
def test_one_tenants_flood_does_not_delay_another_beyond_its_share(
        api: statek.StatekClientAPI, flood_first: bool) -> None:
    """Both submission orders: whichever the worker launches first, the small tenant's
    calls alternate with the flood's once calls wait."""
    flood, small = 300, 30
    with _order_server() as url:
        harness.use_provider(url, "fairness")
        _order_settings()
        agent = statek.Agent("tenants", "tenants worker.")  # one agent: one launch order
        groups = [("small", small, "globex"), ("flood", flood, "acme")]
        for tag, count, tenant in (groups[::-1] if flood_first else groups):
            harness.submit(api, agent, count, tag=tag, TENANT=tenant)
        harness.run_worker(flood + small + 16)
        tags = [entry[3] for entry in harness.served(harness.report(url, "fairness"))]
    assert tags.count("flood") == flood and tags.count("small") == small
    last_small = max(i for i, tag in enumerate(tags) if tag == "small")
    # round-robin: the small tenant's calls alternate with the flood's, so its last one comes
    # within twice its own count (FIFO, with the flood launched first: after all 300)
    assert last_small <= 2 * small + SLACK, (last_small, tags[:last_small + 1])

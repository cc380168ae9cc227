"""What the admission tests share: the mock server process, a worker run, the server's log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import statek
from statek.executors.utils import run_jobs_loop
from statek.providers import AnthropicProvider, OpenAICompatibleProvider, add_provider
from statek.settings import get_statek_settings

SERVER = Path(__file__).with_name("mock_llm_server.py")
READY_WITHIN = 60.0  # failure bound for the server's readiness line
PROVIDER = "mockai"


@contextmanager
def mock_server(*args: str) -> Iterator[str]:
    """Start the mock server with `args`; yields its base URL once it printed readiness."""
    proc = subprocess.Popen([sys.executable, str(SERVER), *args], stdout=subprocess.PIPE,
                            text=True)
    guard = threading.Timer(READY_WITHIN, proc.kill)  # a server that never gets ready dies
    guard.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        guard.cancel()
        if not line.startswith("mock-llm ready "):
            raise RuntimeError(f"mock server did not start: {line!r} (exit {proc.poll()})")
        yield line.split()[-1]
    finally:
        guard.cancel()
        proc.kill()
        proc.wait(timeout=30)


def report(url: str, key: str) -> list[list[Any]]:
    """[[t, status, tokens, tag], ...] the server saw for API key `key`."""
    with urllib.request.urlopen(f"{url}/report?key={key}", timeout=60) as answer:
        return list(json.loads(answer.read())["requests"])


def use_provider(url: str, key: str, style: str = "openai") -> None:
    """Register PROVIDER: the mock server with API key `key`, the worker's only model."""
    if style == "anthropic":
        add_provider(PROVIDER, AnthropicProvider(url, key, name=PROVIDER, max_connections=64,
                                                 max_retries=2, backoff_max=1.0))
    else:
        add_provider(PROVIDER, OpenAICompatibleProvider(url + "/v1", key, name=PROVIDER,
                                                        max_connections=64, max_retries=2,
                                                        backoff_max=1.0))


def bind_settings(**rate_settings: Any) -> None:
    """Bind settings with the given rate-limit fields (the store stays open)."""
    statek.init(get_statek_settings(reply_max_tokens=64, **rate_settings))


def submit(api: statek.StatekClientAPI, agent: statek.Agent, count: int, tag: str | None = None,
           **metadata: Any) -> list[str]:
    """`count` jobs of `agent` on PROVIDER; `tag` shows in their prompt (the server logs it),
    `metadata` carries PRIORITY / TENANT."""
    shared = [{"i": i} if tag is None else {"i": i, "tag": tag} for i in range(count)]
    return api.submit_new_job_ids(agent, shared, model=f"{PROVIDER}/m",
                                  metadata=metadata or None)


def utilisation(seen: Sequence[Sequence[Any]], window: float, limit: float) -> float:
    """Tokens the server charged after the first window, as a share of what the limit
    allowed from then until the last request."""
    after = [entry for entry in seen if entry[0] >= window and entry[1] == 200]
    if not after:
        raise AssertionError("no request came after the first window: use more jobs")
    span = after[-1][0] - window
    return sum(entry[2] for entry in after) / (span * limit / window)


def run_worker(max_concurrency: int) -> float:
    """Run the worker until every job is done; returns the seconds it took."""
    began = time.monotonic()
    asyncio.run(run_jobs_loop(max_concurrency, PROVIDER, queue_prefixes=["test"],
                              auto_terminate=True))
    return time.monotonic() - began


def served(seen: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    return [entry for entry in seen if entry[1] == 200]

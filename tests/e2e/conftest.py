"""Fixtures of the end-to-end suite: the model servers and the tool server (one process each,
started once per session), and the settings that point statek at them."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import statek
from tests.e2e import tools
from tests.e2e.helpers import ANTHROPIC_KEY, OPENAI_KEY, FakeLLM, ToolServer

LOOP_KINDS = ("asyncio", "uvloop")


@dataclass
class Servers:
    """The running servers and how statek is pointed at them."""

    openai: FakeLLM  # fakellm, spoken to in the OpenAI chat-completions format
    anthropic: FakeLLM  # a second fakellm, spoken to in the Anthropic Messages format
    tools: ToolServer

    def settings_values(self, use_uvloop: bool) -> dict[str, Any]:
        """StatekSettings fields for a run against these servers. Retries are kept (a pooled
        connection the server just closed is retried at once), their waits short."""
        return {
            "openai_base_url": self.openai.url + "/v1",
            "openai_api_key": OPENAI_KEY,
            "anthropic_base_url": self.anthropic.url,
            "anthropic_api_key": ANTHROPIC_KEY,
            "provider_max_retries": 2,
            "provider_backoff_base": 0.05,
            "provider_backoff_max": 0.2,
            "provider_timeout": 30.0,
            "max_turns": 6,
            "use_uvloop": use_uvloop,
        }

    def settings(self, use_uvloop: bool, **overrides: Any) -> statek.StatekSettings:
        return statek.StatekSettings.build(**{**self.settings_values(use_uvloop), **overrides})

    def environment(self, use_uvloop: bool, data_dir: Path) -> dict[str, str]:
        """The same settings as STATEK_* variables, for a worker process."""
        values = {**self.settings_values(use_uvloop), "data_dir": data_dir}
        env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_")}
        env.update({"STATEK_" + k.upper(): str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in values.items()})
        env[tools.URL_VARIABLE] = self.tools.url
        return env


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("e2e-servers")
    started: list[Any] = []
    try:
        openai = FakeLLM("fakellm-openai", workdir)
        started.append(openai.start())
        anthropic = FakeLLM("fakellm-anthropic", workdir)
        started.append(anthropic.start())
        tool_server = ToolServer()
        started.append(tool_server.start())
        previous = os.environ.get(tools.URL_VARIABLE)
        os.environ[tools.URL_VARIABLE] = tool_server.url
        try:
            yield Servers(openai, anthropic, tool_server)
        finally:
            if previous is None:
                os.environ.pop(tools.URL_VARIABLE, None)
            else:
                os.environ[tools.URL_VARIABLE] = previous
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Each worker test runs on asyncio's loop and on uvloop (skipped when not installed)."""
    kind = str(request.param)
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed (it comes with statek[fast])")
    return kind

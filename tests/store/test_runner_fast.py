"""statek[fast]: start_statek runs on uvloop when it is installed, unless a setting says no."""

from __future__ import annotations

import asyncio

import pytest

import statek
from statek import _json
from statek.settings import StatekSettings


def _loop_type_of_run(api: statek.StatekClientAPI, agent: statek.Agent,
                      settings: StatekSettings) -> str:
    seen: list[str] = []

    @statek.tool
    def loop_kind() -> str:
        kind = type(asyncio.get_running_loop()).__module__
        seen.append(kind)
        return kind

    agent.tool_names = ("loop_kind",)
    api.submit_new_job(agent, warmup_code="exit(loop_kind())")
    statek.start_statek(agents=[agent], settings=settings, max_concurrency=2,
                        auto_terminate=True)
    statek.init()
    (kind,) = seen
    return kind


def test_start_statek_uses_uvloop_when_installed(api: statek.StatekClientAPI,
                                                 agent: statek.Agent) -> None:
    pytest.importorskip("uvloop")
    kind = _loop_type_of_run(api, agent, StatekSettings.build())
    assert kind.startswith("uvloop")


def test_use_uvloop_setting_turns_it_off(api: statek.StatekClientAPI,
                                         agent: statek.Agent) -> None:
    kind = _loop_type_of_run(api, agent, StatekSettings.build(use_uvloop=False))
    assert kind.startswith("asyncio")


def test_json_backend_matches_what_is_installed() -> None:
    try:
        import orjson  # noqa: F401
    except ImportError:
        assert _json.JSON_BACKEND == "json"
    else:
        assert _json.JSON_BACKEND == "orjson"
    assert _json.loads(_json.dumps({"a": [1, 2.5, "x"]})) == {"a": [1, 2.5, "x"]}

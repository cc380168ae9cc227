"""`start_statek(..., auto_terminate=True)` in this process, against both mock servers."""

from __future__ import annotations

import statek
from statek import start_statek
from tests.e2e.conftest import Servers
from tests.e2e.scenarios import (
    ToolFlow,
    anthropic,
    assert_no_unmatched,
    fetch_job,
    load,
    openai,
)

JOBS_PER_AGENT = 3


def test_real_providers_and_async_tools_through_start_statek(
        servers: Servers, loop_kind: str, api: statek.StatekClientAPI) -> None:
    gpt = ToolFlow("SCN-START-GPT", openai())
    claude = ToolFlow("SCN-START-CLAUDE", anthropic())
    before_openai = load(servers.openai, gpt.rules())
    before_anthropic = load(servers.anthropic, claude.rules())
    echo_before = servers.tools.counts().get("/echo", 0)
    agents = [gpt.agent(), claude.agent()]
    words = {flow.marker: [f"{flow.marker.lower()}-{i}" for i in range(JOBS_PER_AGENT)]
             for flow in (gpt, claude)}
    uuids = {flow.marker: [api.submit_new_job(agent, {"word": w}).uuid
                           for w in words[flow.marker]]
             for flow, agent in zip((gpt, claude), agents, strict=True)}

    stats = start_statek(agents=agents, settings=servers.settings(loop_kind == "uvloop"),
                         max_concurrency=4, auto_terminate=True)

    for flow in (gpt, claude):
        for uuid, word in zip(uuids[flow.marker], words[flow.marker], strict=True):
            flow.check(fetch_job(uuid), word, loop_kind)
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    gpt.check_server(servers.openai, JOBS_PER_AGENT, before_openai)
    claude.check_server(servers.anthropic, JOBS_PER_AGENT, before_anthropic)
    # e2e_echo and e2e_guarded each reached the tool server once per job
    assert servers.tools.counts()["/echo"] - echo_before == 2 * 2 * JOBS_PER_AGENT
    jobs = 2 * JOBS_PER_AGENT
    assert stats.jobs_completed == jobs
    assert stats.steps_failed == 0
    assert stats.in_flight == 0 and stats.stranded == 0
    assert stats.steps_done >= 2 * jobs

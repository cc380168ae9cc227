"""Tools that fail inside a running worker: one slower than `step_timeout`, sync tools that
raise, and native tool calls in each server's wire format; the other jobs and the worker
carry on."""

from __future__ import annotations

import time

import statek
from statek import start_statek
from tests.e2e import tools
from tests.e2e.conftest import Servers
from tests.e2e.scenarios import (
    BlockingToolFlow,
    NativeToolFlow,
    Recovery,
    ToolFlow,
    UnreadableArgumentsFlow,
    anthropic,
    assert_no_unmatched,
    fetch_job,
    load,
    openai,
)

SLOW_SECONDS = 30.0  # what the slow tool waits for; the step may await 2 s
STEP_TIMEOUT = 2.0  # generous for the model calls of that job on a loaded machine


def test_slow_tool_times_out_its_step_only(servers: Servers, loop_kind: str,
                                           api: statek.StatekClientAPI) -> None:
    sloth = Recovery("SCN-SLOTH", anthropic(), f"r = e2e_slow({SLOW_SECONDS})",
                     needle="TimeoutError", exit_value="gave up waiting")
    busy = ToolFlow("SCN-BUSY", anthropic())
    before = load(servers.anthropic, sloth.rules(), busy.rules())
    slow_before = servers.tools.counts().get("/slow", 0)
    slow_uuid = api.submit_new_job(sloth.agent([tools.e2e_slow]), {"n": 1},
                                   step_timeout=STEP_TIMEOUT).uuid
    busy_agent = busy.agent()
    words = [f"busy-{i}" for i in range(4)]
    busy_uuids = [api.submit_new_job(busy_agent, {"word": w}).uuid for w in words]

    began = time.monotonic()
    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=3,
                         auto_terminate=True)
    elapsed = time.monotonic() - began

    sloth.check(fetch_job(slow_uuid))
    for uuid, word in zip(busy_uuids, words, strict=True):
        busy.check(fetch_job(uuid), word, loop_kind)
    assert_no_unmatched(servers.anthropic, before)
    assert servers.tools.counts()["/slow"] - slow_before == 1  # the request was in flight
    assert elapsed < SLOW_SECONDS - 5, "the slow tool was not cut off by step_timeout"
    assert stats.jobs_completed == 1 + len(words)
    assert stats.steps_failed == 0 and stats.in_flight == 0 and stats.stranded == 0


def test_sync_tool_errors_reach_the_model(servers: Servers, loop_kind: str,
                                          api: statek.StatekClientAPI) -> None:
    refusal = Recovery("SCN-REFUSE", openai(), "x = e2e_reject('nope')",
                       needle="ValueError: tool refused nope", exit_value="refusal seen")
    zero = Recovery("SCN-ZERO", anthropic(), "q = e2e_divide(1, 0)",
                    needle="ZeroDivisionError: division by zero", exit_value="no zeros")
    before_openai = load(servers.openai, refusal.rules())
    before_anthropic = load(servers.anthropic, zero.rules())
    refusal_uuids = [api.submit_new_job(refusal.agent([tools.e2e_reject]), {"n": i}).uuid
                     for i in range(2)]
    zero_uuids = [api.submit_new_job(zero.agent([tools.e2e_divide]), {"n": i}).uuid
                  for i in range(2)]

    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=4,
                         auto_terminate=True)

    for uuid in refusal_uuids:
        refusal.check(fetch_job(uuid))
    for uuid in zero_uuids:
        zero.check(fetch_job(uuid))
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert stats.jobs_completed == 4 and stats.steps_failed == 0


def test_native_tool_calls_in_both_wire_formats(servers: Servers, loop_kind: str,
                                                api: statek.StatekClientAPI) -> None:
    flows = [NativeToolFlow("SCN-NATIVE-GPT", openai()),
             NativeToolFlow("SCN-NATIVE-CLAUDE", anthropic())]
    before_openai = load(servers.openai, flows[0].rules())
    before_anthropic = load(servers.anthropic, flows[1].rules())
    # each job's first message differs, so the server keeps one conversation per job
    uuids = [[api.submit_new_job(flow.agent(), {"n": f"{flow.marker}-{i}"}).uuid
              for i in range(2)] for flow in flows]

    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=4,
                         auto_terminate=True)

    for flow, flow_uuids in zip(flows, uuids, strict=True):
        for uuid in flow_uuids:
            flow.check(fetch_job(uuid))
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert stats.jobs_completed == 4 and stats.steps_failed == 0


def test_a_blocking_sync_tool_the_model_calls_is_held_to_the_code_budget(
        servers: Servers, loop_kind: str, api: statek.StatekClientAPI) -> None:
    """A sync tool runs in the worker's thread: called natively with a 600 s argument it
    froze every job of the worker for that long (no budget, no hard limit applied). It is
    now bounded like job code calling it; the other job in the worker finishes."""
    blocked = BlockingToolFlow("SCN-BLOCK", openai())
    native = NativeToolFlow("SCN-BLOCK-NEIGHBOUR", anthropic())
    before_openai = load(servers.openai, blocked.rules())
    before_anthropic = load(servers.anthropic, native.rules())
    blocked_uuid = api.submit_new_job(blocked.agent(), {}, step_code_budget=1).uuid
    native_uuid = api.submit_new_job(native.agent(), {"n": "neighbour"}).uuid

    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=4,
                         auto_terminate=True)

    blocked.check(fetch_job(blocked_uuid))
    native.check(fetch_job(native_uuid))
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert servers.openai.matches("SCN-BLOCK-after") == 0
    assert stats.jobs_completed == 2


def test_unreadable_tool_arguments_are_answered_to_the_model(
        servers: Servers, loop_kind: str, api: statek.StatekClientAPI) -> None:
    """Tool-call arguments that are not a JSON object (a model's slip, in either wire
    format) are the model's to fix: the call is answered with an error, the job goes on."""
    flows = [UnreadableArgumentsFlow("SCN-BADARGS-GPT", openai()),
             UnreadableArgumentsFlow("SCN-BADARGS-CLAUDE", anthropic())]
    before_openai = load(servers.openai, flows[0].rules())
    before_anthropic = load(servers.anthropic, flows[1].rules())
    uuids = [api.submit_new_job(flow.agent(), {}).uuid for flow in flows]

    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=4,
                         auto_terminate=True)

    for flow, uuid in zip(flows, uuids, strict=True):
        flow.check(fetch_job(uuid))
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    assert stats.jobs_completed == 2 and stats.steps_failed == 0


def test_async_tools_in_warmups_without_a_model(servers: Servers, loop_kind: str,
                                                api: statek.StatekClientAPI) -> None:
    """The tools alone, through the worker: warmups that exit never call the model."""
    agent = statek.Agent("SCN-WARMUP-TOOLS", "", tools=[tools.e2e_guarded, tools.e2e_slow,
                                                        tools.e2e_loop_kind],
                         metadata={"MODEL": "openai/e2e-unused"})
    guarded = [api.submit_new_job(agent, {"word": f"w{i}"}, warmup_code=(
        "g = e2e_guarded(word)\nk = e2e_loop_kind()\nexit([g, k])")).uuid for i in range(3)]
    slow = api.submit_new_job(agent, {"word": "slow"}, step_timeout=0.5, warmup_code=(
        f"try:\n    e2e_slow({SLOW_SECONDS})\nexcept TimeoutError as exc:\n"
        "    exit('timed out: ' + repr(exc))\nexit('not cut off')")).uuid

    stats = start_statek(settings=servers.settings(loop_kind == "uvloop"), max_concurrency=4,
                         auto_terminate=True)

    for i, uuid in enumerate(guarded):
        job = fetch_job(uuid)
        assert (str(job.status), job.error) == ("DONE", None), job.console
        assert list(job.exit_status) == [f"w{i}:same-task", loop_kind], job.console
    job = fetch_job(slow)
    assert (str(job.status), job.error, job.exit_status) == (
        "DONE", None, "timed out: TimeoutError('no result within step_timeout=0.5s (the job "
        "param, or STATEK_STEP_TIMEOUT)')"), job.console
    assert stats.jobs_completed == 4 and stats.steps_failed == 0

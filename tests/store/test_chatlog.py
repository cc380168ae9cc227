"""The chat log's stored form: inline JSON lines, spilled to a list past INLINE_CHARS."""

from __future__ import annotations

import dbzero as db0
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statek
from statek.execution import conversation
from statek.executors.utils import run_job_step
from statek.models import chatlog
from statek.providers import ScriptedProvider, add_provider, remove_provider


def test_short_log_is_one_inline_string(api: statek.StatekClientAPI,
                                        agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    assert job.log(chatlog.error("first")) == 1
    assert job.log(chatlog.tool_result("c1", "add", "3")) == 2
    assert type(job.chat) is str
    first, second = job.chat_log
    assert (first["kind"], first["message"]) == ("error", "first")
    assert (second["kind"], second["call_id"], second["name"], second["result"]) == (
        "tool", "c1", "add", "3")


def test_long_log_spills_to_a_list_and_keeps_order(api: statek.StatekClientAPI,
                                                   agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    text = "x" * 700
    lengths = [job.log(chatlog.error(f"{i}:{text}")) for i in range(12)]
    assert lengths == list(range(1, 13))
    assert type(job.chat) is not str  # 12 entries of ~730 chars do not fit INLINE_CHARS
    assert chatlog.length(job.chat) == 12
    assert [e["message"].split(":")[0] for e in job.chat_log] == [str(i) for i in range(12)]
    db0.commit()
    assert [e["message"] for e in job.chat_log][-1] == f"11:{text}"


def test_entry_with_newlines_and_lone_surrogates_round_trips(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    odd = "line one\nline two\r\n\u2028 and a lone \ud800 surrogate"
    job.log(chatlog.turn(odd, 0, 2, odd, [("id", "tool", '{"a": 1}')], 5, 6))
    job.log(chatlog.error("after"))
    turn, after = job.chat_log
    assert turn["user"] == odd and turn["reply"] == odd
    assert turn["tool_calls"] == [("id", "tool", '{"a": 1}')]
    assert (turn["input_tokens"], turn["output_tokens"]) == (5, 6)
    assert after["message"] == "after"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.text(max_size=900)), max_size=20))
def test_appended_matches_a_plain_list(items: list[tuple[bool, str]]) -> None:
    """The stored-form algebra on plain Python values (a list stands in for dbzero's): any
    mix of turns and other entries reads back in order, and the turns are counted (a tool
    call id of "turn" must not count as one)."""
    stored: object = None
    for n, (is_turn, text) in enumerate(items, 1):
        entry = (chatlog.turn(text, 0, 0, text, [("turn", "t", "{}")], 1, 2) if is_turn
                 else chatlog.error(text))
        replacement, count = chatlog.appended(stored, chatlog.encode(entry))
        if replacement is not None:
            stored = replacement
        assert count == n == chatlog.length(stored)
        if type(stored) is str:
            assert len(stored) <= max(chatlog.INLINE_CHARS, len(stored.split("\n")[0]) + 1)
    assert chatlog.count_turns(stored) == sum(is_turn for is_turn, _ in items)
    assert [e[2] for e in chatlog.entries(stored)] == [text for _, text in items]
    assert [e[2] for e in chatlog.entries(stored, 3)] == [text for _, text in items][3:]


def test_legacy_tuple_entries_still_read(api: statek.StatekClientAPI,
                                         agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    job.chat = [("error", 1.0, "stored by statek 0.1")]
    job.log(chatlog.error("new"))
    assert [e["message"] for e in job.chat_log] == ["stored by statek 0.1", "new"]


@pytest.mark.parametrize("restart_cache", [False, True])
async def test_history_is_the_same_across_the_spill(api: statek.StatekClientAPI,
                                                    agent: statek.Agent,
                                                    restart_cache: bool) -> None:
    """The model sees every past turn whether the log is inline or spilled, and whether the
    history comes from the in-memory cache or is rebuilt from storage."""
    long_code = "x = x + 1  # " + "pad " * 300 + "\nif x == 6:\n    exit(x)"
    provider = ScriptedProvider([long_code], record=True)
    add_provider("spill", provider)
    try:
        job = api.submit_new_job(agent, {"x": 0})
        for _ in range(20):
            if restart_cache:
                conversation.forget(job.uuid)
            if await run_job_step(job, "spill"):
                break
    finally:
        remove_provider("spill")
    assert job.exit_status == 6
    assert type(job.chat) is not str
    last = provider.requests[-1]
    assert [m.role for m in last.messages] == ["user", "assistant"] * 5 + ["user"]
    assert all(m.content == long_code for m in last.messages[1::2])

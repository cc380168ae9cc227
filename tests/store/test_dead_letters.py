"""`read_dead_letters`: both lists of a prefix read together, oldest first, as plain data."""

from __future__ import annotations

import dbzero as db0

from statek.models.dead_letters import read_dead_letters
from statek.outbox.state import OutboxState
from statek.statek_push_queue import StatekPushQueue


def test_none_before_a_worker_kept_any(statek_store: str) -> None:
    assert read_dead_letters(statek_store) == []


def test_both_lists_merge_oldest_first_and_the_limit_keeps_the_newest(
        statek_store: str) -> None:
    queue = StatekPushQueue(statek_store)
    queue.record_dead_letter("message", "JOB1", {"text": "hi", "tags": ["a"]}, "job cancelled")
    outbox = OutboxState(statek_store)
    outbox.dead_letters.append({"at": 1.0, "kind": "job", "target": "ob-x", "item": None,
                                "reason": "no agent with uuid Z"})  # older than the first
    queue.record_dead_letter("event", "AGENT", 7, "agent does not exist")
    db0.commit()
    rows = read_dead_letters(statek_store)
    assert [(r["source"], r["kind"], r["target"]) for r in rows] == [
        ("outbox", "job", "ob-x"), ("queue", "message", "JOB1"), ("queue", "event", "AGENT")]
    assert rows[1]["item"] == {"text": "hi", "tags": ["a"]}  # plain, not dbzero's
    assert type(rows[1]["item"]) is dict and type(rows[1]["item"]["tags"]) is list
    assert rows[0]["reason"] == "no agent with uuid Z" and rows[0]["item"] is None
    newest = read_dead_letters(statek_store, limit=2)
    assert [r["kind"] for r in newest] == ["message", "event"]
    assert read_dead_letters(statek_store, limit=0) == []

"""A prefix's dead letters read together, for people: what the worker kept instead of
applying, and why.

Two lists hold them, written by the worker only: the push queue's (`StatekPushQueue.
dead_letters`: messages for missing or cancelled jobs, events no agent can take, the entries
of a damaged queue chunk, and those of each kind a feeding process sent through the outbox)
and the outbox state's (`OutboxState.dead_letters`: submits and cancels the worker refused,
records it could not read). Each keeps its newest `MAX_DEAD_LETTERS`. Both are found, not
constructed, so this works where the prefix is open read-only beside a running worker.
"""

from __future__ import annotations

from typing import Any

import dbzero as db0

from statek.models.containers import plain_copy
from statek.models.push_queue import StatekPushQueue
from statek.outbox.state import find_state

QUEUE, OUTBOX = "queue", "outbox"
"""`source` of a row: the list it was kept in."""


def read_dead_letters(prefix: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The dead letters of `prefix`, oldest first (the newest `limit` when given), each a
    plain dict: `at` (epoch seconds), `source`, `kind`, `target` (a job or agent uuid, an
    outbox id, or ""), `reason`, `item` (what was kept: a message, an event; None where
    nothing could be)."""
    rows: list[dict[str, Any]] = []
    queue = db0.find_singleton(StatekPushQueue, prefix)
    if queue is not None:
        rows.extend(_rows(queue.dead_letters, QUEUE, limit))
    state = find_state(prefix)
    if state is not None:
        rows.extend(_rows(state.dead_letters, OUTBOX, limit))
    rows.sort(key=lambda row: row["at"])
    return rows if limit is None else rows[len(rows) - limit:] if limit else []


def _rows(letters: Any, source: str, limit: int | None) -> list[dict[str, Any]]:
    count = len(letters)
    first = 0 if limit is None else max(0, count - limit)
    out = []
    for stored in letters[first:count]:
        letter = dict(stored.items())
        out.append({"at": float(letter.get("at") or 0.0), "source": source,
                    "kind": str(letter.get("kind", "")), "target": str(letter.get("target", "")),
                    "reason": str(letter.get("reason", "")),
                    "item": plain_copy(letter.get("item"))})
    return out

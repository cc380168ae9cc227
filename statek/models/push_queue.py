"""StatekPushQueue: the durable inbox of a worker, one per dbzero prefix.

It holds two kinds of work: messages for jobs (FIFO of (job id, message)) and events for
supervised agents (one FIFO per agent). Producers only append. The runner peeks a batch,
applies it, and advances the head in the same transaction; when the jobs live in another
prefix than the queue, each job remembers the last sequence number it applied, so a batch
re-read after a crash between the two commits is skipped rather than applied twice.

A queue may live in another prefix than the current one: its containers are assigned as plain
values so dbzero creates them in the queue's prefix (see `statek.models.fifo`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import dbzero as db0

from statek import signals, worker_state
from statek.models.fifo import CHUNK_SIZE, Fifo, push_item
from statek.models.storable import check_uuid, check_value
from statek.store import current_prefix, open_prefix, transition

MAX_DEAD_LETTERS = 10_000


def _target_id(target: Any, what: str) -> str:
    """The uuid of a job or agent given as itself or as its uuid (a uuid str is checked:
    dbzero 0.7.0 crashes on some strings used as keys or inside tuples)."""
    if isinstance(target, str):
        check_uuid(target, what)
        return target
    return str(db0.uuid(target))


@db0.memo(singleton=True, id="statek/PushQueue")
class StatekPushQueue:
    """The push queue of `prefix` (default: the current prefix); constructing it again returns
    the same queue."""

    def __init__(self, prefix: str | None = None) -> None:
        db0.set_prefix(self, prefix)
        self.prefix_name = prefix or current_prefix()
        self.messages = Fifo(prefix, stride=2, packed=True)  # (job uuid, message) pairs
        self.events: Any = {}  # agent uuid -> Fifo
        self.dead_letters: Any = []
        self.created_at = time.time()

    # ------------------------------------------------------------ producers
    def push_message(self, job: Any, message: Any) -> int:
        """Queue `message` for `job` (a Job or its uuid); returns the sequence number."""
        job_id = _target_id(job, "job")
        check_value(message, "message")
        state = worker_state.current()
        held = state.queue_fifos  # `messages` is never assigned again
        fifo = held.get(self)
        if fifo is None:
            fifo = self.messages
            held.put(self, fifo)
        with transition():
            seq = push_item(fifo, (job_id, message), state.fifo_tails)
        signals.queue_pushed()
        return seq

    def push_messages(self, pairs: Sequence[tuple[Any, Any]]) -> int:
        """Queue many (job, message) pairs in order; returns the first sequence number."""
        items = []
        for job, message in pairs:
            check_value(message, "message")
            items.append((_target_id(job, "job"), message))
        with transition():
            seq = int(self.messages.push_many(items))
        signals.queue_pushed()
        return seq

    def push_event(self, agent: Any, event: Any) -> int:
        """Queue an event for a supervised agent; it becomes one new job."""
        check_value(event, "event")
        agent_id = _target_id(agent, "agent")
        with transition():
            fifo = self.events.get(agent_id)
            if fifo is None:
                fifo = Fifo(self.prefix_name)
                self.events[agent_id] = fifo
            seq = int(fifo.push(event))
        signals.queue_pushed()
        return seq

    # ------------------------------------------------------------ consumers
    def message_count(self) -> int:
        return len(self.messages)

    def event_count(self, agent: Any = None) -> int:
        if agent is None:
            return sum(len(f) for f in self.events.values())
        fifo = self.events.get(agent if isinstance(agent, str) else db0.uuid(agent))
        return 0 if fifo is None else len(fifo)

    def __len__(self) -> int:
        return self.message_count() + self.event_count()

    def peek_messages(self, limit: int) -> tuple[int, list[tuple[str, Any]]]:
        """(first sequence number, up to `limit` oldest (job uuid, message) pairs)."""
        return self.messages.peek(limit)  # type: ignore[no-any-return,unused-ignore]

    def peek_message_columns(self, limit: int) -> tuple[int, list[Any], list[Any]]:
        """(first sequence number, job uuids, messages) of up to `limit` oldest messages: the
        drain's read, one slice per chunk and no tuple per message."""
        fifo = self.messages
        first, values = fifo.peek_flat(limit)
        if fifo.width() == 2:
            return first, values[0::2], values[1::2]
        return first, [pair[0] for pair in values], [pair[1] for pair in values]

    def set_aside_damaged_messages(self, reason: str) -> tuple[int, int]:
        """Move the messages of the chunk holding the head, which cannot be read (a
        damaged packed chunk, docs/storage.md S16), to the dead letters as stored, so the
        messages after them flow again: (first sequence number, messages set aside). Call
        in a transition."""
        first, count, entries = self.messages.set_aside_head_chunk()
        delivered = first % CHUNK_SIZE
        self.record_dead_letter(
            "damaged", "", entries,
            f"{reason}; messages {first}..{first + count - 1} of the queue could not be read "
            f"and were set aside: `item` is their chunk's stored entries as found, from the "
            f"chunk's start ({delivered} message(s) of it were delivered before)")
        return first, count

    def ack_messages(self, count: int) -> None:
        """Drop the `count` oldest messages: call in the transaction that applied them."""
        self.messages.advance(count)

    def peek_events(self, agent: Any, limit: int) -> tuple[int, list[Any]]:
        fifo = self.events.get(agent if isinstance(agent, str) else db0.uuid(agent))
        if fifo is None:
            return 0, []
        return fifo.peek(limit)  # type: ignore[no-any-return,unused-ignore]

    def ack_events(self, agent: Any, count: int) -> None:
        fifo = self.events.get(agent if isinstance(agent, str) else db0.uuid(agent))
        if fifo is not None:
            fifo.advance(count)

    def event_agents(self) -> list[str]:
        """Uuids of agents with queued events."""
        return [key for key, fifo in self.events.items() if len(fifo)]

    def record_dead_letter(self, kind: str, target: str, item: Any, reason: str) -> None:
        """Keep an item that could not be applied, with why, instead of losing it."""
        if len(self.dead_letters) >= MAX_DEAD_LETTERS:
            del self.dead_letters[0]
        self.dead_letters.append(
            {"at": time.time(), "kind": kind, "target": target, "item": item, "reason": reason}
        )

    def upgrade_stored_form(self) -> None:
        """Bring a queue stored by an earlier statek to the current form: its messages packed
        from the next chunk on, and each fifo's head and tail in one list (the worker calls
        this once per queue it drains, outside any user's block; producers never pay the
        check)."""
        messages = self.messages
        with transition():
            if messages.width() == 2 and not messages.packing():
                messages.pack_from_next_chunk()
            messages.store_ends_in_a_list()
            for fifo in self.events.values():
                fifo.store_ends_in_a_list()

    def pop_messages(self, limit: int) -> list[tuple[str, Any]]:
        """Remove and return up to `limit` messages (for consumers that apply them elsewhere)."""
        with transition():
            _, items = self.messages.peek(limit)
            self.messages.advance(len(items))
        return [(str(job_id), message) for job_id, message in items]


def open_queue(prefix: str | None = None) -> StatekPushQueue:
    """The queue of `prefix` (default: the current prefix), opening that prefix read-write
    first when this process has not (statek's way: autocommit off), and leaving the current
    prefix as it was. In dbzero 0.7.0 constructing the singleton of a prefix not open yet
    made a second, empty queue there instead of finding the stored one."""
    name = prefix or current_prefix()
    writable = {meta.name for meta in db0.get_mutable_prefixes()}
    if name not in writable:
        current = current_prefix()
        open_prefix(name, "rw")
        open_prefix(current, "rw" if current in writable else "r")
    return StatekPushQueue(name)

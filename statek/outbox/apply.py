"""Applying one outbox record in the worker (inside the drain's transition).

Each kind is checked before it writes anything, so a record that cannot be applied becomes a
dead letter with the reason and writes nothing else. A message or an event is kept where one
pushed into the queue would be, in the prefix's `StatekPushQueue.dead_letters` (a producer
need not know whether a worker was running); other records in the outbox state's.

A "keyed" record wraps the records of one HTTP request that carried an Idempotency-Key
(statek.server.front): the key is recorded with them, in the same transaction, and a later
record with the same key and request applies nothing: its job ids are made to name the jobs
the first one made. So a retry that reached the front after it lost its memory of the key
(a restart) still makes no second job. Values were checked by the producer
and are checked again here: the worker trusts no file for what dbzero may crash on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import dbzero as db0

from statek.errors import StatekError
from statek.models.agent import Agent
from statek.models.by_uuid import fetch_or_none
from statek.models.idempotency import key_store
from statek.models.job import Job
from statek.models.jobdef import JobDef
from statek.models.push_queue import StatekPushQueue
from statek.models.root import root_for
from statek.models.storable import check_value
from statek.models.submit import _checked_vars, create_job, jobdef_for
from statek.outbox.state import (
    MAX_DEAD_LETTERS,
    is_outbox_id,
    made_for,
    record_made,
    split_id,
)
from statek.runtime.queues import event_problem, refusal_of

log = logging.getLogger("statek.outbox")
#: Ids a producer may have given out ahead of the ones applied (its threads race) before an
#: id is refused as forged: each step of a gap is one stored None.
MAX_ID_GAP = 100_000


class Applier:
    """Applies records to the prefix whose outbox state is `state`; `created` collects the
    uuids of new jobs (the scheduler hears of them after the transition)."""

    def __init__(self, state: Any, prefix: str) -> None:
        self.state = state
        self.prefix = prefix
        self.made = state.made
        self.created: list[tuple[str, JobDef]] = []  # (uuid, its definition)
        self.reopened: list[str] = []  # finished jobs messages re-opened: one line per drain
        self.applied = 0

    def apply(self, item: Any) -> None:
        kind = item[0] if type(item) is tuple and item else None
        try:
            if kind == "jobs":
                self._jobs(*item[1:])
            elif kind == "msg":
                self._message(*item[1:])
            elif kind == "event":
                self._event(*item[1:])
            elif kind == "cancel":
                self._cancel(*item[1:])
            elif kind == "keyed":
                self._keyed(*item[1:])
            elif kind == "bad":
                self.dead_letter("record", "", None, str(item[1]))
            elif kind != "end":
                self.dead_letter("record", "", None, f"unknown record kind {kind!r:.40}")
        except (StatekError, TypeError, ValueError) as exc:
            self.dead_letter(str(kind), "", None, f"{type(exc).__name__}: {exc}")

    def _jobs(self, agent_id: str, locale: Any, params: Any, pairs: Any) -> None:
        agent = fetch_or_none(agent_id)
        if not isinstance(agent, Agent):
            for job_id, _values in pairs:
                self.dead_letter("job", job_id, None, f"no agent with uuid {agent_id}")
            return
        if locale is not None and type(locale) is not str:
            raise TypeError("locale must be a str")
        jobdef = jobdef_for(agent, dict(params))
        anchor = root_for().jobs
        lists: dict[str, Any] = {}
        for job_id, values in pairs:
            if not is_outbox_id(job_id):
                self.dead_letter("job", str(job_id), None, "malformed job id")
                continue
            try:
                checked = _checked_vars(values, None)
            except StatekError as exc:
                self.dead_letter("job", job_id, None, str(exc))
                continue
            producer, counter = split_id(job_id)
            made = lists.get(producer)
            if made is None:
                made = lists[producer] = self._made_by(producer)
            if counter > len(made) + MAX_ID_GAP:
                self.dead_letter("job", job_id, None, "job id counter far beyond its producer's")
                continue
            job = Job(jobdef, checked, locale)
            anchor.append(job)
            job.tag_new()
            record_made(made, counter, job)
            self.created.append((str(db0.uuid(job)), jobdef))
            self.applied += 1

    def target(self, job_id: str) -> Any:
        if is_outbox_id(job_id):
            return made_for(self.state, job_id)
        return fetch_or_none(job_id)

    def _message(self, job_id: str, message: Any) -> None:
        check_value(message, "message")
        job = self.target(job_id)
        refusal = refusal_of(job)
        if refusal is not None:
            self.queue_dead_letter("message", job_id, message, refusal)
            return
        job.apply_messages([message], reopened=self.reopened)
        self.applied += 1

    def _event(self, agent_id: str, event: Any) -> None:
        check_value(event, "event")
        agent = fetch_or_none(agent_id)
        problem = "agent does not exist" if agent is None else event_problem(agent)
        if problem is not None:
            self.queue_dead_letter("event", agent_id, event, problem)
            return
        create_job(jobdef_for(agent, {}), {agent.warmup_externals[0]: event}, None)
        self.applied += 1

    def _cancel(self, job_id: str) -> None:
        job = self.target(job_id)
        if not isinstance(job, Job):
            self.dead_letter("cancel", job_id, None, "no job with this id")
            return
        job.cancel()
        self.applied += 1

    def _keyed(self, key: str, print_: str, status: int, answer: str, items: Any) -> None:
        if type(key) is not str or type(print_) is not str or type(answer) is not str:
            raise TypeError("a keyed record needs a str key, fingerprint and answer")
        if type(items) is not list or any(type(item) is not tuple for item in items):
            raise TypeError("a keyed record holds a list of records")
        keys = key_store(self.prefix)
        found = keys.find(key)
        if found is None:
            for item in items:
                self.apply(item)
            keys.remember(key, print_, int(status), answer.encode())
        elif found[0] != print_:
            self.dead_letter("keyed", key, None, f"Idempotency-Key {key!r} was used before "
                                                 "for a different request: nothing applied")
            self._refused(items)
        else:
            self._same_jobs(found[2], items)

    def _same_jobs(self, first_answer: bytes, items: list[Any]) -> None:
        """A repeated request: its job ids name the jobs its first answer named."""
        try:
            first = json.loads(first_answer)
        except ValueError:
            return
        if type(first) is not dict:
            return
        first_ids = first.get("jobs") or [first.get("job")]
        retry_ids = [pair[0] for item in items if len(item) == 5 and item[0] == "jobs"
                     for pair in item[4]]
        for first_id, job_id in zip(first_ids, retry_ids, strict=False):
            job = self.target(first_id) if type(first_id) is str else None
            if is_outbox_id(job_id):  # the first one refused: this one reads as refused too
                producer, counter = split_id(job_id)
                record_made(self._made_by(producer), counter,
                            job if isinstance(job, Job) else None)

    def _refused(self, items: list[Any]) -> None:
        """Mark the job ids of refused records as applied to nothing (a read of one then
        says it was refused, rather than not applied yet)."""
        for item in items:
            if len(item) != 5 or item[0] != "jobs" or type(item[4]) is not list:
                continue
            for pair in item[4]:
                if type(pair) is tuple and pair and is_outbox_id(pair[0]):
                    producer, counter = split_id(pair[0])
                    made = self._made_by(producer)
                    if counter >= len(made):
                        record_made(made, counter, None)

    def _made_by(self, producer: str) -> Any:
        """The stored list of jobs made for `producer`'s ids (created on first use)."""
        made = self.made.get(producer)
        if made is None:
            self.made[producer] = []
            made = self.made[producer]
        return made

    def queue_dead_letter(self, kind: str, target: str, item: Any, reason: str) -> None:
        """A message or event kept in the push queue's dead letters (checked values)."""
        StatekPushQueue(self.prefix).record_dead_letter(kind, str(target)[:80], item,
                                                        reason[:2000])
        log.warning("outbox %s for %s kept as a dead letter of the push queue: %s", kind,
                    target, reason)

    def dead_letter(self, kind: str, target: str, item: Any, reason: str) -> None:
        letters = self.state.dead_letters
        if len(letters) >= MAX_DEAD_LETTERS:
            del letters[0]
        try:
            check_value(item, "item")
        except StatekError:
            item = None
        letters.append({"at": time.time(), "kind": kind, "target": str(target)[:80],
                        "item": item, "reason": reason[:2000]})
        log.warning("outbox %s for %s kept as a dead letter: %s", kind, target, reason)



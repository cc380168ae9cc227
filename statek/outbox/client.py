"""The producer's side of `StatekClientAPI` when a worker holds the store (mode "feed").

Every call checks its input as the in-process call does, appends a record to this process's
outbox segment and returns once it is on disk: accepted means durable. The worker applies it
within milliseconds (it is woken) and exactly once.

Job ids: a submit cannot wait for the worker to make the job, so the producer chooses each
job's id ("ob" + this producer's id + a counter) and returns it at once (as a `PendingJob`). The
worker records which job it made for that id; `get_job`, `push_message` and `cancel_job` take
either that id or the job's dbzero uuid, here and in the worker. Until the worker has applied
(and committed) the submit, `get_job` raises JobPendingError (a JobNotFoundError) in the
process that submitted it and JobNotFoundError elsewhere; `PendingJob.applied()` returns the
job once it exists. Messages and cancels for a pending id are accepted: the worker applies
them after the submit (one producer's records are applied in order).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import dbzero as db0

from statek.errors import (
    AgentNotFoundError,
    JobNotFoundError,
    JobPendingError,
    UnstorableValueError,
)
from statek.models.agent import Agent
from statek.models.by_uuid import fetch_or_none
from statek.models.containers import plain_copy
from statek.models.job import Job
from statek.models.status import DONE
from statek.models.storable import check_storable_mapping, check_value
from statek.models.submit import DEFINITION_KEYS, _check_definition_keys, _checked_vars
from statek.outbox import records, state
from statek.outbox.writer import OutboxWriter, writer_for

#: Jobs per record (a batch call writes all its records with one write and one fsync).
JOBS_PER_RECORD = 1000


class PendingJob:
    """A job submitted through the outbox that the worker had not applied when last read."""

    status = "PENDING"
    is_done = False
    cancelled = False
    exit_status: Any = None
    error: str | None = None

    def __init__(self, client: OutboxClient, uuid: str) -> None:
        self._client = client
        self.uuid = uuid

    def applied(self) -> Job | None:
        """The job the worker made for this id, once it has (and committed it)."""
        found = self._client.applied(self.uuid)
        return found if isinstance(found, Job) else None

    def wait(self, timeout: float = 60.0, poll: float = 0.02) -> Job:
        """The job once it is DONE (as this process reads the worker's commits: a read-only
        prefix cannot be woken, so this polls); TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.applied()
            if job is not None and job.is_done:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.uuid} was not done within {timeout} s")
            time.sleep(poll)

    def __repr__(self) -> str:
        return f"<PendingJob {self.uuid} (not applied by the worker yet)>"


class OutboxClient:
    """Writes through the outbox of `prefix` (open read-only in this process)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.writer: OutboxWriter = writer_for(prefix)

    # ------------------------------------------------------------ writes
    def submit(self, agent: Any, shared_vars_batch: Iterable[Mapping[str, Any] | None],
               locale: str | None, job_params: Mapping[str, Any]) -> list[str]:
        """Append jobs (all checked first); returns their ids."""
        ids, frames = self.submit_frames(agent, shared_vars_batch, locale, job_params)
        if frames:
            self.writer.append(frames)
        return ids

    def submit_frames(self, agent: Any, shared_vars_batch: Iterable[Mapping[str, Any] | None],
                      locale: str | None, job_params: Mapping[str, Any],
                      ) -> tuple[list[str], list[bytes]]:
        """The jobs checked, their ids, and the records to append (appending is the caller's:
        the HTTP server groups the appends of concurrent requests, statek.server.accept)."""
        ids, items, plain = self.submit_records(agent, shared_vars_batch, locale, job_params)
        return ids, [records.dumps(item, plain=plain) for item in items]

    def submit_records(self, agent: Any, shared_vars_batch: Iterable[Mapping[str, Any] | None],
                       locale: str | None, job_params: Mapping[str, Any],
                       ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """The jobs checked: their ids, the records (not framed) and whether those hold
        plain scalars only (`records.dumps(plain=...)`)."""
        agent_id = agent_uuid(agent)
        if locale is not None and type(locale) is not str:
            raise UnstorableValueError(f"locale must be a str, not {type(locale).__name__}")
        _check_definition_keys(job_params)
        params = dict(job_params)
        check_storable_mapping({k: v for k, v in params.items() if k not in DEFINITION_KEYS},
                               "job_params")
        given = list(shared_vars_batch)
        batch = [_plain(_checked_vars(v, None if len(given) == 1 else i))
                 for i, v in enumerate(given)]
        scalars = _scalars(params) and all(_scalars(values) for values in batch)
        ids = self.writer.new_ids(len(batch))
        items: list[tuple[Any, ...]] = [
            ("jobs", agent_id, locale, params,
             list(zip(ids[at:at + JOBS_PER_RECORD], batch[at:at + JOBS_PER_RECORD],
                      strict=True)))
            for at in range(0, len(batch), JOBS_PER_RECORD)]
        return ids, items, scalars

    def push_message(self, job: Any, message: Any) -> int:
        return self.writer.append([records.dumps(self.message_record(job, message))])

    def message_record(self, job: Any, message: Any) -> tuple[Any, ...]:
        """The record of a message, checked: the job exists (or is pending) and takes
        messages as this process last read it."""
        job_id = self._job_id(job)
        check_value(message, "message")
        found = self.applied(job_id)
        if isinstance(found, Job):
            found.check_takes_messages()
        return ("msg", job_id, plain_copy(message))

    def push_event(self, agent: Any, event: Any) -> int:
        return self.writer.append([records.dumps(self.event_record(agent, event))])

    def event_record(self, agent: Any, event: Any) -> tuple[Any, ...]:
        agent_id = agent_uuid(agent)
        check_value(event, "event")
        return ("event", agent_id, plain_copy(event))

    def cancel(self, job: Any) -> bool:
        """Queue the cancel; False (and nothing queued) when the job is already DONE as this
        process last read it."""
        item = self.cancel_record(job)
        if item is None:
            return False
        self.writer.append([records.dumps(item)])
        return True

    def cancel_record(self, job: Any) -> tuple[Any, ...] | None:
        """The record of a cancel, or None for a job DONE as this process last read it."""
        job_id = self._job_id(job)
        found = self.applied(job_id)
        if isinstance(found, Job) and found.state == DONE:
            return None
        return ("cancel", job_id)

    # ------------------------------------------------------------ reads
    def applied(self, job_id: str) -> Any:
        """The job the store has for `job_id` (an outbox id or a dbzero uuid), or None."""
        db0.refresh()
        if state.is_outbox_id(job_id):
            return state.lookup(self.prefix, job_id)
        return fetch_or_none(job_id)

    def get_job(self, uuid: str) -> Job:
        found = self.applied(uuid) if type(uuid) is str and uuid.isascii() else None
        if isinstance(found, Job):
            return found
        if state.is_outbox_id(uuid) and self.writer.issued(uuid):
            raise JobPendingError(f"job {uuid} is accepted (on disk) and waits for the worker "
                                  "to apply it; read it again shortly")
        hint = (" (a job submitted through the outbox is found once the worker has applied "
                "it)" if state.is_outbox_id(uuid) else "")
        raise JobNotFoundError(f"no job with uuid {uuid!r}{hint}")

    def _job_id(self, job: Any) -> str:
        if isinstance(job, PendingJob):
            return job.uuid
        if isinstance(job, str):
            if state.is_outbox_id(job):
                self._check_known(job)
                return job
            if not isinstance(fetch_or_none(job), Job):  # not a uuid, or another store's
                shown = repr(job) if len(job) <= 80 else f"{job[:80]!r}..."
                raise JobNotFoundError(f"no job with uuid {shown}")
            return job
        if isinstance(job, Job):
            return str(db0.uuid(job))
        raise TypeError(f"a job is a Job, a PendingJob or an id, not {type(job).__name__}")

    def _check_known(self, job_id: str) -> None:
        """JobNotFoundError for an outbox id no producer can have issued: not applied, not
        this process's, and its producer has no segment left to apply (the worker would
        only dead-letter what is sent to it). A producer whose segments are still there may
        have issued it: accepted (its submit may not be applied yet)."""
        if self.writer.issued(job_id) or self.applied(job_id) is not None:
            return
        producer, counter = state.split_id(job_id)
        if self._has_segments(producer):
            return
        # Its last segment may have been applied and reclaimed since the lookup: the job is
        # committed before its segment goes, so a fresh read finds it.
        if self.applied(job_id) is None:
            found = state.find_state(self.prefix)
            jobs = None if found is None else found.made.get(producer)
            dead = jobs is not None and counter < len(jobs)  # applied, as None: refused
            raise JobNotFoundError(
                f"no job with id {job_id!r}: " + (
                    "the worker refused its submit (see `statek dead-letters`)" if dead
                    else "no producer has issued it, or its submit is gone"))

    def _has_segments(self, producer: str) -> bool:
        try:
            names = os.listdir(self.writer.directory)
        except FileNotFoundError:
            return False
        return any(name.startswith(producer) for name in names)


def agent_uuid(agent: Any, remember: bool = True) -> str:
    """The uuid of an agent given as itself, its uuid or its role (it must exist in the
    store; a role several agents share is refused). `remember`: a role once found is not
    looked up again (a feeding process cannot create agents; a writer can)."""
    if isinstance(agent, str):
        return _agent_named(agent, remember)
    if not isinstance(agent, Agent):
        raise TypeError(f"agent must be an Agent of the store, its uuid or its role, not "
                        f"{type(agent).__name__} {agent!r:.80}")
    return str(db0.uuid(agent))


_roles: dict[str, str] = {}  # role -> uuid, once found (an agent's role does not change)


def _agent_named(name: str, remember: bool = True) -> str:
    if remember and name in _roles:
        return _roles[name]
    check_value(name, "agent")
    if isinstance(fetch_or_none(name), Agent):
        return name
    if remember:
        db0.refresh()  # a feeding process: the worker's newest commit
    matches = [a for a in db0.find(Agent) if a.role == name]
    if len(matches) != 1:
        roles = sorted({str(a.role) for a in db0.find(Agent)})
        raise AgentNotFoundError(
            f"agent: {len(matches)} agents have role {name!r}; name one by uuid "
            f"({', '.join(str(db0.uuid(a)) for a in matches[:5])})" if matches
            else f"agent: no agent with role or uuid {name[:80]!r} (roles: "
                 f"{', '.join(roles[:20]) or 'none'})")
    found = str(db0.uuid(matches[0]))
    if remember:
        _roles[name] = found
    return found


_SCALARS = (int, float, str, bool, bytes, type(None))


def _scalars(values: dict[str, Any]) -> bool:
    return all(type(value) in _SCALARS for value in values.values())


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values with any container read from dbzero copied into plain ones (for pickling)."""
    if _scalars(values):
        return values
    return {name: plain_copy(v) for name, v in values.items()}

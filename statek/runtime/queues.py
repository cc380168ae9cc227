"""Draining push queues: messages to jobs, events to new jobs of supervised agents.

A batch is applied and acknowledged inside one transition, so a crash before the commit
re-delivers the whole batch and one after it delivers none of it again. When a job lives in
another prefix than the queue (prefixes commit separately), the jobs' prefixes are committed
first, then the queue's; each such job remembers the last sequence number it applied per
queue, so a batch re-read after a crash between the two commits is skipped.

Values read from a queue in another prefix are copied into plain Python values before they
are stored with a job: a dbzero container stored across prefixes reads back as garbage after
a commit (dbzero 0.7.0). References to memo objects are kept as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import dbzero as db0

from statek import store, worker_state
from statek._speedups import partition_batch
from statek.errors import ConfigurationError
from statek.models.agent import SupervisedAgent
from statek.models.by_uuid import fetch_or_none
from statek.models.code_analysis import event_reader_problem
from statek.models.containers import plain_copy as plain_copy  # re-exported (tests)
from statek.models.job import Job, log_reopened
from statek.models.push_queue import StatekPushQueue, open_queue
from statek.models.status import DONE
from statek.models.submit import create_job, jobdef_for

log = logging.getLogger("statek.queues")

def check_queue_prefixes(prefixes: Sequence[str | int] | None) -> list[str]:
    """The distinct prefix names to drain (default: the current prefix), each open for
    writing once checked.

    A name no prefix of the store has raises ConfigurationError naming it, and nothing is
    created: opening the queue of a mistyped prefix would create an empty one and watch it
    forever."""
    names = [str(p) for p in prefixes] if prefixes else [store.current_prefix()]
    unique = list(dict.fromkeys(names))
    known = worker_state.current().known_prefixes  # seen to exist (checking lists a dir)
    if not known.issuperset(unique):
        existing = {meta.name for meta in db0.get_prefixes()}
        missing = [name for name in unique if name not in existing]
        if missing:
            raise ConfigurationError(
                f"queue prefix {missing[0]!r} does not exist in the dbzero store "
                f"(queue_prefixes={names!r}; existing prefixes: "
                f"{', '.join(repr(n) for n in sorted(existing)) or 'none'}); create it with "
                f"statek.open_prefix({missing[0]!r}) before starting the worker")
        for name in unique:
            open_queue(name).upgrade_stored_form()
        known.update(unique)
    return unique


def queues_of(prefixes: Sequence[str | int] | None) -> list[StatekPushQueue]:
    """The push queue of each prefix (see `check_queue_prefixes` for a missing prefix)."""
    return [StatekPushQueue(name) for name in check_queue_prefixes(prefixes)]


def _prefix_of(obj: Any) -> str:
    return str(db0.get_prefix_of(obj).name)


class _Target:
    """A job a drain delivers to, looked up once per drain call. Not kept between calls:
    holding jobs and their inboxes alive makes every commit dearer
    (docs/costs.md#cost-table, C30)."""

    __slots__ = ("inbox", "job", "prefix", "refusal", "state")

    def __init__(self, job_uuid: str) -> None:
        job = fetch_or_none(job_uuid)
        self.job = job
        self.inbox: Any = None  # what its last delivery returned (statek.models.inbox.deliver)
        self.state: int | None = None  # the job's status until a delivery changes it
        if isinstance(job, Job):  # only a DONE job can be cancelled: one read for most
            self.state = state = job.state
            self.refusal = CANCELLED if state == DONE and job.cancelled else None
        else:
            self.refusal = refusal_of(job)
        self.prefix = "" if self.refusal is not None else _prefix_of(job)


CANCELLED = "the job was cancelled: a cancelled job takes no messages"


def refusal_of(job: Any) -> str | None:
    """Why a queued message cannot be delivered to `job` (fetched by its uuid), or None."""
    if job is None:
        return "no job with this uuid"
    if not isinstance(job, Job):
        return f"the uuid names a {type(job).__name__}, not a job"
    if job.cancelled:
        return CANCELLED
    return None


def _deliver_batch(queue: StatekPushQueue, first_seq: int, job_ids: list[Any],
                   messages: list[Any], cache: dict[str, _Target], written: set[str],
                   reopened: list[str]) -> int:
    """Apply one peeked batch (inside the caller's transition); returns messages applied.

    Messages are grouped per job (`partition_batch`), so each job is written once per batch
    however many messages it gets. A message that cannot be delivered becomes a dead letter
    of the queue, with the reason. The prefixes of jobs living outside the queue's prefix
    are added to `written`, the uuids of finished jobs re-opened to `reopened`."""
    ids: dict[str, int] = {}
    numbers = [ids.setdefault(str(job_uuid), len(ids)) for job_uuid in job_ids]
    uuids = list(ids)
    targets = [cache.get(u) or cache.setdefault(u, _Target(u)) for u in uuids]
    queue_key = queue.prefix_name
    applied: dict[int, int] = {}
    for number, target in enumerate(targets):
        if target.prefix and target.prefix != queue_key:
            seqs = target.job.applied_seqs
            if seqs is not None and queue_key in seqs:
                applied[number] = int(seqs[queue_key])
    order, groups, _duplicates = partition_batch(
        numbers, range(first_seq, first_seq + len(numbers)), applied)
    delivered = 0
    for number, indices in zip(order, groups, strict=True):
        target = targets[number]
        batch = [messages[i] for i in indices]
        if target.refusal is not None:
            _dead_letters(queue, uuids[number], batch, target.refusal)
            continue
        job = target.job
        if target.prefix != queue_key:
            batch = [plain_copy(m) for m in batch]
        target.inbox = job.apply_messages(batch, target.inbox, uuids[number], reopened,
                                          target.state)
        target.state = None  # changed by the delivery: read again if another queue feeds it
        delivered += len(indices)
        if target.prefix != queue_key:
            _remember_seq(job, queue_key, first_seq + indices[-1])
            written.add(target.prefix)
    queue.ack_messages(len(numbers))
    return delivered


def _dead_letters(queue: StatekPushQueue, job_uuid: str, messages: list[Any],
                  reason: str) -> None:
    for message in messages:
        queue.record_dead_letter("message", job_uuid, message, reason)
    log.warning("%d queued message(s) for job %s kept as dead letters in the queue of "
                "prefix %r: %s", len(messages), job_uuid, queue.prefix_name, reason)


def _remember_seq(job: Any, queue_key: str, seq: int) -> None:
    if job.applied_seqs is None:
        job.applied_seqs = {queue_key: seq}
    else:
        job.applied_seqs[queue_key] = seq


def process_push_notifications(step_size: int = 100, max_count: int = 500, *,
                               queue_prefixes: Sequence[str | int],
                               job_prefix: str | None = None) -> int:
    """Pop queued job messages and apply them with `job.push_user_message` semantics.

    Delivers at most `max_count` per call and returns messages delivered. Everything a call
    takes from one queue is applied and acknowledged in one transition, so each job is
    written once per call however many messages it gets, and the queue's head once
    (`step_size`, the batch size of earlier versions, only has to be positive). A message
    for a missing or cancelled job is kept in the queue's dead letters
    (`StatekPushQueue.dead_letters`) with the reason, and logged. Each job's prefix is read
    from the job, so `job_prefix` (where the jobs live) is accepted for compatibility only.
    The messages of a damaged chunk (docs/storage.md S16) are set aside in the dead
    letters as stored, and logged; the messages after them are drained."""
    del job_prefix  # found per job: a queue may feed jobs of several prefixes
    if step_size <= 0 or max_count <= 0:
        return 0
    delivered = 0
    cache: dict[str, _Target] = {}
    reopened: list[str] = []
    for queue in queues_of(queue_prefixes):
        if delivered >= max_count:
            break
        written: set[str] = set()
        with store.transition():
            try:
                first, job_ids, messages = queue.peek_message_columns(max_count - delivered)
            except ValueError as damaged:
                first, job_ids, messages = _read_around_damage(queue, max_count - delivered,
                                                               damaged)
            if not job_ids:
                continue
            delivered += _deliver_batch(queue, first, job_ids, messages, cache, written,
                                        reopened)
        if written:  # jobs first, then the queue: a crash in between re-reads items
            _commit_in_order(written, queue.prefix_name)  # the jobs then skip
    log_reopened(log, reopened, "queued messages")
    return delivered


def _read_around_damage(queue: StatekPushQueue, limit: int,
                        damaged: ValueError) -> tuple[int, list[Any], list[Any]]:
    """The messages before the damaged chunk a read met (docs/storage.md S16), or, when
    the damage is in the chunk holding the head, none: that chunk's messages go to the dead
    letters as stored (kept, not decoded) and the next call drains the ones after them."""
    left = queue.messages.left_in_head_chunk()
    if left < limit:  # the read spanned chunks: the head's may be sound
        try:
            return queue.peek_message_columns(left)
        except ValueError:
            pass
    first, count = queue.set_aside_damaged_messages(str(damaged))
    log.error("push queue of prefix %r: messages %d..%d set aside in its dead letters, their "
              "chunk cannot be read: %s", queue.prefix_name, first, first + count - 1, damaged)
    return first + count, [], []


def _commit_in_order(first: Iterable[str], last: str) -> None:
    for prefix in sorted(first):
        db0.commit(prefix)
    db0.commit(last)


def event_problem(agent: Any) -> str | None:
    """Why events for `agent` cannot become jobs, or None."""
    if not isinstance(agent, SupervisedAgent):
        role = getattr(agent, "role", None)
        what = f"agent {role!r}" if role is not None else f"a {type(agent).__name__}"
        return f"{what} is not a SupervisedAgent"
    problem = event_reader_problem(tuple(agent.warmup_externals))
    return None if problem is None else f"warmup of agent {agent.role!r} {problem}"


def check_event_target(agent: Any) -> None:
    """Refuse (ConfigurationError) an agent whose events could never become jobs, before an
    event is queued for it: the worker would only dead-letter it."""
    problem = event_problem(agent)
    if problem is not None:
        raise ConfigurationError(f"{problem}: an event for it would never become a job")


def process_agent_events(agents: Iterable[Any] | None = None, max_count: int = 100, *,
                         queue_prefixes: Sequence[str | int]) -> int:
    """Pop queued events of supervised agents and create one job per event.

    An event whose agent cannot take it (not supervised, warmup without exactly one outside
    local, agent gone) is moved to the queue's dead letters with the reason and logged with
    the agent named; the other agents' events go on. Returns jobs created."""
    if max_count <= 0:
        return 0
    wanted = None if agents is None else {db0.uuid(a): a for a in agents}
    created = 0
    for queue in queues_of(queue_prefixes):
        for agent_id in queue.event_agents():
            if created >= max_count:
                return created
            if wanted is not None and agent_id not in wanted:
                continue
            agent = wanted[agent_id] if wanted is not None else fetch_or_none(agent_id)
            created += _start_event_jobs(queue, agent_id, agent, max_count - created)
    return created


def _start_event_jobs(queue: StatekPushQueue, agent_id: str, agent: Any, limit: int) -> int:
    """Jobs for up to `limit` events of one agent, created in the current prefix; a queue in
    another prefix is committed after it (an event is then never lost, at worst re-run)."""
    job_prefix = store.current_prefix()
    cross_prefix = job_prefix != queue.prefix_name
    with store.transition():
        _first, events = queue.peek_events(agent_id, limit)
        if not events:
            return 0
        problem = "agent does not exist" if agent is None else event_problem(agent)
        if problem is not None:
            for event in events:
                queue.record_dead_letter("event", agent_id, event, problem)
            queue.ack_events(agent_id, len(events))
            log.error("dropped %d event(s) for agent %s into dead letters: %s",
                      len(events), agent_id, problem)
            return 0
        name = agent.warmup_externals[0]
        jobdef = jobdef_for(agent, {})
        for event in events:
            create_job(jobdef, {name: plain_copy(event) if cross_prefix else event}, None)
        queue.ack_events(agent_id, len(events))
    if cross_prefix:
        _commit_in_order((job_prefix,), queue.prefix_name)
    return len(events)

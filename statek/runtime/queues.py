"""Draining push queues: messages to jobs, events to new jobs of supervised agents.

A batch is applied and acknowledged inside one transition, so a crash before the commit
re-delivers the whole batch and one after it delivers none of it again. When the jobs live in
another prefix than the queue (separately committed), each job remembers the last sequence
number it applied per queue, and a re-delivered item is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import dbzero as db0

from statek import store
from statek._speedups import partition_batch
from statek.models.agent import SupervisedAgent
from statek.models.push_queue import StatekPushQueue
from statek.models.submit import create_job, jobdef_for

log = logging.getLogger("statek.queues")


def queues_of(prefixes: Sequence[str | int] | None) -> list[StatekPushQueue]:
    names = [str(p) for p in prefixes] if prefixes else [store.current_prefix()]
    return [StatekPushQueue(name) for name in dict.fromkeys(names)]


def _job_or_none(job_uuid: str) -> Any:
    try:
        return db0.fetch(job_uuid)
    except Exception:  # dbzero raises several kinds for a missing object
        return None


def _deliver_batch(queue: StatekPushQueue, first_seq: int, items: list[Any],
                   cross_prefix: bool, job_cache: dict[str, list[Any]]) -> int:
    """Apply one peeked batch (inside the caller's transition); returns messages applied.

    Messages are grouped per job (`partition_batch`), so each job is fetched once per call
    (`job_cache`) and written once per batch, however many messages it gets."""
    ids: dict[str, int] = {}
    targets = [ids.setdefault(str(job_uuid), len(ids)) for job_uuid, _ in items]
    uuids = list(ids)
    jobs = []
    for job_uuid in uuids:
        cached = job_cache.get(job_uuid)
        if cached is None:
            cached = job_cache[job_uuid] = [_job_or_none(job_uuid), None]
        jobs.append(cached)
    queue_key = queue.prefix_name
    applied: dict[int, int] = {}
    if cross_prefix:
        for number, job in enumerate(jobs):
            seqs = None if job[0] is None else job[0].applied_seqs
            if seqs is not None and queue_key in seqs:
                applied[number] = int(seqs[queue_key])
    seqs_of_items = list(range(first_seq, first_seq + len(items)))
    order, groups, _duplicates = partition_batch(targets, seqs_of_items, applied)
    delivered = 0
    for number, indices in zip(order, groups, strict=True):
        cached = jobs[number]
        job = cached[0]
        if job is None:
            for i in indices:
                queue.record_dead_letter("message", uuids[number], items[i][1],
                                         "no job with this uuid")
                log.warning("queued message for missing job %s kept as dead letter",
                            uuids[number])
            continue
        cached[1] = job.apply_messages([items[i][1] for i in indices], cached[1])
        delivered += len(indices)
        if cross_prefix:
            last = seqs_of_items[indices[-1]]
            if job.applied_seqs is None:
                job.applied_seqs = {queue_key: last}
            else:
                job.applied_seqs[queue_key] = last
    queue.ack_messages(len(items))
    return delivered


def process_push_notifications(step_size: int = 100, max_count: int = 500, *,
                               queue_prefixes: Sequence[str | int],
                               job_prefix: str | None = None) -> int:
    """Pop queued job messages and apply them with `job.push_user_message` semantics.

    Works in batches of `step_size`, at most `max_count` per call; returns messages
    delivered. `job_prefix` names the prefix the jobs live in when it differs from the
    queue's (enables de-duplication by sequence number)."""
    if step_size <= 0 or max_count <= 0:
        return 0
    delivered = 0
    job_cache: dict[str, list[Any]] = {}  # uuid -> [job or None, its inbox once known]
    for queue in queues_of(queue_prefixes):
        cross_prefix = job_prefix is not None and job_prefix != queue.prefix_name
        while delivered < max_count:
            with store.transition():
                first, items = queue.peek_messages(min(step_size, max_count - delivered))
                if not items:
                    break
                delivered += _deliver_batch(queue, first, items, cross_prefix, job_cache)
                if not cross_prefix:
                    continue
            # jobs first, then the queue: a crash in between re-reads items the jobs skip
            db0.commit(job_prefix)
            db0.commit(queue.prefix_name)
    return delivered


def event_problem(agent: Any) -> str | None:
    """Why events for `agent` cannot become jobs, or None."""
    if not isinstance(agent, SupervisedAgent):
        return f"agent {agent.role!r} is not a SupervisedAgent"
    names = tuple(agent.warmup_externals)
    if len(names) != 1:
        return (f"warmup of agent {agent.role!r} must read exactly one external local to "
                f"receive the event, it reads {len(names)}: {', '.join(names) or 'none'}")
    return None


def process_agent_events(agents: Iterable[Any] | None = None, max_count: int = 100, *,
                         queue_prefixes: Sequence[str | int]) -> int:
    """Pop queued events of supervised agents and create one job per event.

    An event whose agent cannot take it (not supervised, warmup without exactly one external
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
            agent = wanted[agent_id] if wanted is not None else _job_or_none(agent_id)
            created += _start_event_jobs(queue, agent_id, agent, max_count - created)
    return created


def _start_event_jobs(queue: StatekPushQueue, agent_id: str, agent: Any, limit: int) -> int:
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
            create_job(jobdef, {name: event}, None)
        queue.ack_events(agent_id, len(events))
    return len(events)

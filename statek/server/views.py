"""What the API says about jobs and agents (read-only; the store's objects as JSON data)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dbzero as db0

from statek.errors import JobNotFoundError
from statek.models.agent import Agent, SupervisedAgent
from statek.models.by_uuid import fetch_or_none
from statek.models.job import Job
from statek.models.root import root_jobs
from statek.models.status import DONE, STATUS_NAMES
from statek.outbox.state import is_outbox_id, lookup, settled
from statek.server.errors import ApiError, bad_field
from statek.server.jsonable import jsonable
from statek.server.validate import ID

#: Jobs one page of a listing looks at, at most (a page may hold fewer than `limit`).
SCAN_PER_PAGE = 20_000


def fetch_job(job_uuid: str) -> Any:
    """The job with this uuid, or with this outbox id (one a producer chose) once the worker
    applied it; a 404 naming the id otherwise."""
    if is_outbox_id(job_uuid):
        found = lookup(db0.get_current_prefix().name, job_uuid)
        if isinstance(found, Job):
            return found
        if settled(db0.get_current_prefix().name, job_uuid):
            raise ApiError(404, "job_not_found", f"no job with id {job_uuid!r}: the worker "
                           "refused its submit (the reason is in its dead letters, `statek "
                           "dead-letters`; e.g. an Idempotency-Key reused for another request)")
        raise ApiError(404, "job_not_found", f"no job with uuid {job_uuid!r} (an outbox id the "
                       "worker has not applied yet, or one no producer gave)")
    job = fetch_or_none(job_uuid) if ID.fullmatch(job_uuid) else None
    if job is None:
        raise ApiError(404, "job_not_found", f"no job with uuid {job_uuid[:80]!r}")
    if not isinstance(job, Job):
        raise ApiError(404, "job_not_found", f"{job_uuid!r} is a {type(job).__name__}, not a job")
    return job


def find_agent(ref: str, field: str = "agent") -> Any:
    """The agent named by uuid or by role (a role several agents share is refused)."""
    found = fetch_or_none(ref) if ID.fullmatch(ref) else None
    if isinstance(found, Agent):
        return found
    matches = [a for a in db0.find(Agent) if a.role == ref]
    if not matches:
        roles = sorted({str(a.role) for a in db0.find(Agent)})
        raise ApiError(404, "agent_not_found",
                       f"{field}: no agent with role or uuid {ref[:80]!r} "
                       f"(roles: {', '.join(roles[:20]) or 'none'})", field)
    if len(matches) > 1:
        raise ApiError(409, "agent_ambiguous",
                       f"{field}: {len(matches)} agents have role {ref!r}; name one by uuid "
                       f"({', '.join(str(db0.uuid(a)) for a in matches[:5])})", field)
    return matches[0]


def agent_data(agent: Any) -> dict[str, Any]:
    return {"uuid": str(db0.uuid(agent)), "role": agent.role,
            "supervised": isinstance(agent, SupervisedAgent),
            "description": agent.description}


def job_summary(job: Any, role_of: dict[str, str] | None = None) -> dict[str, Any]:
    jobdef = job.jobdef
    if role_of is None:
        role = jobdef.agent.role
    else:
        key = str(db0.uuid(jobdef))
        role = role_of.get(key)
        if role is None:
            role = role_of[key] = jobdef.agent.role
    state = job.state
    error = job.error
    return {"uuid": str(db0.uuid(job)), "agent": role, "status": STATUS_NAMES[state],
            "created_at": job.created_at,
            "finished_at": job.done_at if state == DONE else None,
            "error": None if error is None else str(error)[:500]}


def job_detail(job: Any) -> dict[str, Any]:
    """Everything `statek show` prints: status, exit, error, console, chat log, usage, locals."""
    data = job_summary(job)
    parent = job.parent
    data.update({
        "exit_status": jsonable(job.exit_status),
        "error": job.error,
        "cancelled": bool(job.cancelled),
        "parent": None if parent is None else str(db0.uuid(parent)),
        "console": job.console,
        "chat_log": jsonable(job.chat_log),
        "usage": {"turns": job.turns, "input_tokens": job.input_tokens,
                  "output_tokens": job.output_tokens},
        "locals": jsonable(dict(job.locals)),
        "messages": {"received": len(job.messages), "unread": job.unread_messages},
        "previous_results": jsonable(job.previous_results),
    })
    return data


def parse_status(text: str | None) -> set[int] | None:
    if text is None:
        return None
    states = set()
    for name in text.split(","):
        upper = name.strip().upper()
        if upper not in STATUS_NAMES:
            raise bad_field("status", f"{name!r} is not a status (one of "
                                      f"{', '.join(STATUS_NAMES)})")
        states.add(STATUS_NAMES.index(upper))
    return states


def list_jobs(states: set[int] | None, agent: Any, limit: int, cursor: int | None,
              descending: bool) -> dict[str, Any]:
    """One page of jobs in submission order (or newest first), filtered; `next_cursor` is
    where the next page starts (None at the end). A page looks at SCAN_PER_PAGE jobs at
    most, so it may hold fewer than `limit` even when more follow."""
    anchor = root_jobs()
    total = len(anchor)
    agent_key = None if agent is None else str(db0.uuid(agent))
    role_of: dict[str, str] = {}
    agent_of: dict[str, str] = {}
    jobs: list[dict[str, Any]] = []
    indices = _indices(total, cursor, descending)
    position = None
    for scanned, index in enumerate(indices):
        if len(jobs) >= limit or scanned >= SCAN_PER_PAGE:
            position = index
            break
        job = anchor[index]
        if states is not None and job.state not in states:
            continue
        if agent_key is not None and _agent_uuid(job, agent_of) != agent_key:
            continue
        jobs.append(job_summary(job, role_of))
    return {"jobs": jobs, "next_cursor": position, "total": total}


def _indices(total: int, cursor: int | None, descending: bool) -> Iterator[int]:
    if descending:
        start = total - 1 if cursor is None else min(cursor, total - 1)
        return iter(range(start, -1, -1))
    return iter(range(0 if cursor is None else cursor, total))


def _agent_uuid(job: Any, agent_of: dict[str, str]) -> str:
    jobdef = job.jobdef
    key = str(db0.uuid(jobdef))
    found = agent_of.get(key)
    if found is None:
        found = agent_of[key] = str(db0.uuid(jobdef.agent))
    return found


def status_counts() -> dict[str, int]:
    """Jobs per status (index counts: cheap)."""
    from statek.models.status import status_value

    return {name: len(db0.find(Job, status_value(i))) for i, name in enumerate(STATUS_NAMES)}


def count_by_agent(anchor: Any, start: int, stop: int, role_of: dict[str, str],
                   by_agent: dict[str, dict[str, int]]) -> None:
    """Add jobs anchor[start:stop] to by_agent[role][status] (reads each job)."""
    for index in range(start, stop):
        summary = job_summary(anchor[index], role_of)
        row = by_agent.setdefault(summary["agent"], {})
        row[summary["status"]] = row.get(summary["status"], 0) + 1


def not_found(exc: JobNotFoundError) -> ApiError:
    return ApiError(404, "job_not_found", str(exc))

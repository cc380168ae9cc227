"""What the dashboard pages show, read from the store (plain data, nothing job-controlled is
trusted: templates escape every string; this module only picks and shapes values).

Reads go through the same objects as the JSON API (`statek.server.views`), so a page and
`GET /v1/jobs/{uuid}` never disagree. Scans are bounded: a page looks at `SCAN_LIMIT` jobs at
most, so a store of a million jobs costs a page the same as one of twenty thousand.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dbzero as db0

from statek.models.root import root_jobs
from statek.models.status import DONE, STATUS_NAMES
from statek.server.jsonable import jsonable
from statek.server.views import job_summary, status_counts

#: Jobs one page looks at, at most (filters and searches stop there and say so).
SCAN_LIMIT = 20_000
#: Children listed on a job page, at most.
CHILDREN_SHOWN = 200
#: Characters of one value shown (locals, exit status) before "…".
VALUE_CHARS = 2_000
#: Jobs read between two yields to the event loop (a page never stalls the worker's steps).
CHUNK = 1_000
#: The newest console lines and chat entries a job page shows.
CONSOLE_SHOWN = 5_000
CHAT_SHOWN = 300
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def preview(value: Any, limit: int = VALUE_CHARS) -> str:
    """A stored value as short JSON text (repr for what JSON cannot say)."""
    try:
        text = json.dumps(jsonable(value), default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


# ---------------------------------------------------------------------------- overview
async def counts_by_agent(limit: int = SCAN_LIMIT) -> tuple[dict[str, dict[str, int]], bool]:
    """role -> status -> jobs, over the newest `limit` jobs; and whether that was all.
    Yields to the event loop every CHUNK jobs."""
    anchor = root_jobs()
    total = len(anchor)
    role_of: dict[str, str] = {}
    by_agent: dict[str, dict[str, int]] = {}
    for index in range(total - 1, max(total - limit, 0) - 1, -1):
        if index % CHUNK == 0:
            await asyncio.sleep(0)
        summary = job_summary(anchor[index], role_of)
        row = by_agent.setdefault(summary["agent"], {})
        row[summary["status"]] = row.get(summary["status"], 0) + 1
    return by_agent, total <= limit


async def overview() -> dict[str, Any]:
    by_agent, complete = await counts_by_agent()
    rows = [{"agent": role, "counts": [row.get(s, 0) for s in STATUS_NAMES],
             "total": sum(row.values())} for role, row in sorted(by_agent.items())]
    return {"by_status": status_counts(), "by_agent": rows, "complete": complete,
            "total": len(root_jobs())}


# ---------------------------------------------------------------------------- job list
@dataclass
class JobFilter:
    """The job list's query: status names, an agent role, a search text (uuid prefix, or
    text found in the agent, error, exit status or console)."""

    statuses: set[int] = field(default_factory=set)
    agent: str = ""
    search: str = ""
    cursor: int | None = None
    limit: int = 50

    def matches(self, job: Any, summary: dict[str, Any]) -> bool:
        if self.statuses and job.state not in self.statuses:
            return False
        if self.agent and summary["agent"] != self.agent:
            return False
        if not self.search:
            return True
        needle = self.search.lower()
        if summary["uuid"].lower().startswith(needle):
            return True
        haystack = [summary["agent"], summary["error"] or ""]
        if job.state == DONE:
            haystack.append(preview(job.exit_status, 500))
        haystack.extend(job.console)
        return any(needle in str(text).lower() for text in haystack)


def parse_filter(query: dict[str, str]) -> tuple[JobFilter, list[str]]:
    """The filter a query string asks for, and one problem line per bad parameter."""
    problems: list[str] = []
    wanted = JobFilter(agent=query.get("agent", "").strip()[:200],
                       search=query.get("q", "").strip()[:200])
    for name in filter(None, (s.strip().upper() for s in query.get("status", "").split(","))):
        if name in STATUS_NAMES:
            wanted.statuses.add(STATUS_NAMES.index(name))
        else:
            problems.append(f"status {name[:40]!r} is not one of {', '.join(STATUS_NAMES)}")
    cursor = query.get("cursor", "")
    if cursor:
        if cursor.isdigit() and len(cursor) < 19:
            wanted.cursor = int(cursor)
        else:
            problems.append(f"cursor {cursor[:40]!r} is not a job position")
    return wanted, problems


async def job_page(wanted: JobFilter) -> dict[str, Any]:
    """Newest first: up to `limit` matching jobs; `next_cursor` continues after them.
    Yields to the event loop every CHUNK jobs."""
    anchor = root_jobs()
    total = len(anchor)
    start = total - 1 if wanted.cursor is None else min(wanted.cursor, total - 1)
    role_of: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    next_cursor = None
    scanned = 0
    for index in range(start, -1, -1):
        if len(rows) >= wanted.limit or scanned >= SCAN_LIMIT:
            next_cursor = index
            break
        scanned += 1
        if scanned % CHUNK == 0:
            await asyncio.sleep(0)
        job = anchor[index]
        summary = job_summary(job, role_of)
        if wanted.matches(job, summary):
            summary["created"] = when(summary["created_at"])
            rows.append(summary)
    return {"jobs": rows, "next_cursor": next_cursor, "total": total, "scanned": scanned,
            "agents": agent_roles()}


def agent_roles() -> list[str]:
    from statek.models.agent import Agent

    return sorted({str(agent.role) for agent in db0.find(Agent)})


# ---------------------------------------------------------------------------- job page
def segments(text: str) -> list[dict[str, str]]:
    """A model reply split into prose and fenced code blocks ({"kind", "text", "lang"})."""
    parts: list[dict[str, str]] = []
    position = 0
    for found in _FENCE.finditer(text):
        if found.start() > position:
            parts.append({"kind": "text", "text": text[position:found.start()], "lang": ""})
        parts.append({"kind": "code", "text": found.group(2), "lang": found.group(1)})
        position = found.end()
    if position < len(text):
        parts.append({"kind": "text", "text": text[position:], "lang": ""})
    if len(parts) == 1 and parts[0]["kind"] == "text" and _looks_like_code(text):
        parts[0]["kind"] = "code"  # statek runs a bare reply as code too
    return [p for p in parts if p["text"].strip()]


def _looks_like_code(text: str) -> bool:
    try:
        compile(text, "<reply>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _message(role: str, at: str, parts: list[dict[str, str]], name: str = "",
             tokens: tuple[Any, Any] | None = None,
             tool_calls: list[str] | None = None) -> dict[str, Any]:
    return {"role": role, "at": at, "parts": parts, "name": name, "tokens": tokens,
            "tool_calls": tool_calls or []}


def _text(text: Any) -> list[dict[str, str]]:
    return [{"kind": "text", "text": str(text), "lang": ""}]


def conversation(chat_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat log as messages: what the model was shown (user), its reply (assistant, with
    code blocks), tool results (tool) and errors (error)."""
    messages: list[dict[str, Any]] = []
    for entry in chat_log:
        kind, at = entry.get("kind"), when(entry.get("at"))
        if kind == "turn":
            if entry.get("user"):
                messages.append(_message("user", at, _text(entry["user"])))
            calls = [f"{c[1]}({c[2]})" for c in entry.get("tool_calls") or () if len(c) > 2]
            messages.append(_message("assistant", at, segments(str(entry.get("reply") or "")),
                                     tokens=(entry.get("input_tokens"),
                                             entry.get("output_tokens")),
                                     tool_calls=calls))
        elif kind == "tool":
            messages.append(_message("tool", at, [{"kind": "code", "lang": "",
                                                   "text": str(entry.get("result"))}],
                                     name=str(entry.get("name"))))
        else:
            messages.append(_message("error", at, _text(entry.get("message"))))
    return messages


def timeline(job: Any, chat_log: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Timestamped moments: created, each turn / tool result / error, finished."""
    moments: list[tuple[float, str]] = [(job.created_at, "created (READY)")]
    turn = 0
    for entry in chat_log:
        at = entry.get("at")
        if not isinstance(at, (int, float)):
            continue
        kind = entry.get("kind")
        if kind == "turn":
            turn += 1
            moments.append((at, f"model turn {turn}"))
        elif kind == "tool":
            moments.append((at, f"tool result: {entry.get('name')}"))
        else:
            moments.append((at, "error"))
    if job.state == DONE and job.done_at is not None:
        moments.append((job.done_at, "DONE" + (" (cancelled)" if job.cancelled else "")))
    moments.sort(key=lambda m: m[0])
    return [{"at": when(at), "what": what} for at, what in moments]


def waits_on(future: Any, depth: int = 0) -> dict[str, Any] | None:
    """What a suspended job waits for, as a small tree of {"kind", "text", "job", "parts"}."""
    if future is None:
        return None
    kind = str(future.kind)
    node: dict[str, Any] = {"kind": kind, "text": "", "job": None, "parts": [],
                            "ready": bool(future.resolved)}
    if kind == "job":
        target = future.target
        node["job"] = str(db0.uuid(target))
        node["text"] = f"job {node['job']} ({STATUS_NAMES[target.state]})"
    elif kind == "timer":
        node["text"] = f"a timer due {when(future.deadline)}"
    elif kind == "message":
        node["text"] = "a message pushed to this job"
    elif kind in ("all", "any"):
        parts = list(future.parts or ())
        node["text"] = f"{kind} of {len(parts)}"
        if depth < 3:
            node["parts"] = [waits_on(p, depth + 1) for p in parts[:50]]
    else:
        node["text"] = f"a condition polled every {future.poll_interval} s"
    return node


def ancestors(job: Any) -> list[dict[str, str]]:
    chain: list[dict[str, str]] = []
    parent = job.parent
    while parent is not None and len(chain) < 50:
        chain.append(_node(parent))
        parent = parent.parent
    chain.reverse()
    return chain


def _node(job: Any) -> dict[str, str]:
    return {"uuid": str(db0.uuid(job)), "status": STATUS_NAMES[job.state],
            "agent": str(job.jobdef.agent.role)}


def children(job: Any) -> tuple[list[dict[str, str]], int]:
    """Jobs whose parent is `job` (listed after it: the jobs list is in creation order, so
    the scan starts at the job's creation time), and how many there are in the scan."""
    anchor = root_jobs()
    key = str(db0.uuid(job))
    found: list[dict[str, str]] = []
    count = 0
    for child in _jobs_from(anchor, job.created_at):
        parent = child.parent
        if parent is not None and str(db0.uuid(parent)) == key:
            count += 1
            if len(found) < CHILDREN_SHOWN:
                found.append(_node(child))
    return found, count


def _jobs_from(anchor: Any, created_at: float) -> Iterator[Any]:
    low, high = 0, len(anchor)
    while low < high:  # first job created at or after `created_at`
        middle = (low + high) // 2
        if anchor[middle].created_at < created_at:
            low = middle + 1
        else:
            high = middle
    for index in range(low, min(low + SCAN_LIMIT, len(anchor))):
        yield anchor[index]


def job_view(job: Any) -> dict[str, Any]:
    """Everything the job page shows."""
    summary = job_summary(job)
    chat_log = job.chat_log
    console = job.console
    kids, kid_count = children(job)
    return {
        **summary,
        "created": when(job.created_at),
        "finished": when(job.done_at) if job.state == DONE else "",
        "cancelled": bool(job.cancelled),
        "exit_status": preview(job.exit_status) if job.state == DONE else None,
        "error": job.error,
        "timeline": timeline(job, chat_log),
        "conversation": conversation(chat_log[-CHAT_SHOWN:]),
        "chat_hidden": max(len(chat_log) - CHAT_SHOWN, 0),
        "console": list(console[-CONSOLE_SHOWN:]),
        "console_first": max(len(console) - CONSOLE_SHOWN, 0),
        "locals": sorted((name, preview(value)) for name, value in job.locals.items()),
        "waits": waits_on(job.awaiting) if job.state != DONE else None,
        "ancestors": ancestors(job),
        "children": kids,
        "child_count": kid_count,
        "usage": {"turns": job.turns, "input_tokens": job.input_tokens,
                  "output_tokens": job.output_tokens,
                  "messages": len(job.messages), "unread": job.unread_messages},
    }

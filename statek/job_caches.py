"""The per-job caches of a worker process, and the one place a finished job leaves them.

A cache keyed by job uuid (a job's kept globals and unstorable locals, its transcript, the
definition it runs, its executor-side namespace) registers here. `Job.finish` is the one
path every end of a job goes through (its own exit, a cancel from a client, a failed
wake-up, a harness breach, an internal error), and it fires `signals.job_finished`, which
calls `drop`: no call site has to remember to forget a job. A job's entries otherwise live
only while it is in memory: each cache bounds itself (least recently used first) or holds
suspended jobs only.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

M = TypeVar("M", bound=MutableMapping[str, Any])
Callback = Callable[[str], None]

_tables: dict[str, MutableMapping[str, Any]] = {}
_callbacks: list[Callback] = []


def register(name: str, table: M) -> M:
    """Drop `table[job_uuid]` whenever that job finishes; `name` is for `resident()`."""
    if name in _tables and _tables[name] is not table:
        raise ValueError(f"a per-job cache named {name!r} is registered already")
    _tables[name] = table
    return table


def unregister(name: str) -> None:
    """Stop dropping finished jobs from the cache registered as `name`."""
    _tables.pop(name, None)


def on_drop(callback: Callback) -> Callback:
    """Call `callback(job_uuid)` whenever a job finishes (for caches that are not a mapping
    here, e.g. an executor process's namespaces)."""
    if callback not in _callbacks:
        _callbacks.append(callback)
    return callback


def drop(job_uuid: str) -> None:
    """Forget a finished job everywhere (called by `signals.job_finished`)."""
    for table in _tables.values():
        table.pop(job_uuid, None)
    for callback in _callbacks:
        callback(job_uuid)


def resident() -> dict[str, int]:
    """Entries per registered cache: what a worker holds for jobs in memory."""
    return {name: len(table) for name, table in _tables.items()}

"""The per-prefix root object that anchors everything statek stores there.

dbzero deletes an object nothing references (a tag field alone does not keep a fresh object
alive), so every agent, job definition and job is appended to a collection here.
"""

from __future__ import annotations

from typing import Any

import dbzero as db0

from statek import worker_state
from statek.store import current_prefix


@db0.memo(singleton=True, id="statek/Root")
class StatekRoot:
    def __init__(self, prefix: str | None = None) -> None:
        db0.set_prefix(self, prefix)
        # plain containers: dbzero creates them in this object's prefix (db0.list() would be
        # made in the current prefix, and its writes lost at the next commit when they differ)
        self.agents: list[Any] = []
        self.jobdefs: dict[str, Any] = {}
        self.jobs: list[Any] = []
        self.schema_version = 1


def root_for(prefix: str | None = None) -> Any:
    """The root of `prefix` (default: the current prefix), created on first use (cached on
    the worker's state owner, dropped with it when the store closes)."""
    name = prefix or current_prefix()
    roots = worker_state.current().roots
    root = roots.get(name)
    if root is None:
        root = StatekRoot(name)
        roots[name] = root
    return root


def root_jobs(prefix: str | None = None) -> Any:
    """The anchor list of `prefix`'s jobs; an empty tuple in a prefix opened read-only that
    no job was ever submitted to (its root does not exist, and a reader cannot create it)."""
    try:
        return root_for(prefix).jobs
    except RuntimeError as exc:
        if "read-only" not in str(exc):
            raise
        return ()

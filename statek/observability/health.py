"""/healthz and /readyz: liveness of the process, readiness of the worker loop and store.

/healthz answers 200 whenever the process can answer at all. /readyz answers 200 only when
a worker loop runs, is not stopping, started an iteration within `ready_deadline` seconds
(an idle loop still iterates at least every second), and the store is open for writing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from statek import store


def health() -> dict[str, Any]:
    return {"ok": True, "pid": os.getpid()}


def _store_problem() -> str | None:
    """Why the store cannot take the worker's writes, or None: it must be open, have a current
    prefix, and (when this process holds the prefix's lock) its folder must be writable."""
    if not store.db_initialized():
        return "the store is not open"
    try:
        name = store.current_prefix()
    except Exception as exc:  # closed while we looked
        return f"the store has no current prefix: {exc}"
    holder = store._runtime.holders.get(name)
    if holder is not None and not os.access(holder.parent, os.W_OK):
        return f"the store's folder {holder.parent} is not writable"
    return None


def readiness(deadline: float) -> tuple[bool, dict[str, Any]]:
    """(ready, details): the reasons it is not ready are listed under "problems"."""
    from statek.runtime.loop import active_loops

    problems: list[str] = []
    loops = active_loops()
    ages = [time.perf_counter() - loop.iterated_at for loop in loops]
    if not loops:
        problems.append("no worker loop is running")
    elif any(loop.stopping for loop in loops):
        problems.append("the worker loop is stopping")
    elif max(ages) > deadline:
        problems.append(f"the worker loop has not iterated for {max(ages):.1f}s "
                        f"(ready_deadline {deadline:g}s)")
    found = _store_problem()
    if found is not None:
        problems.append(found)
    details: dict[str, Any] = {"ready": not problems, "problems": problems,
                               "last_iteration_age_s": round(max(ages), 3) if ages else None}
    return not problems, details

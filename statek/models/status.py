"""Job statuses and the one table of legal moves between them."""

from __future__ import annotations

from typing import Any

import dbzero as db0

from statek.errors import IllegalTransitionError

#: A dbzero enum, so `db0.find(Job, JobStatus.READY)` is an index query.
JobStatus = db0.enum("JobStatus", ["READY", "WARMING_UP", "STARTED", "SUSPENDED", "DONE"])

# Module-level aliases for comparisons (`job.status == DONE`). Queries (`db0.find`) need the
# value bound to an open prefix: pass `JobStatus.READY` looked up at call time instead.
READY, WARMING_UP, STARTED, SUSPENDED, DONE = (
    JobStatus.READY,
    JobStatus.WARMING_UP,
    JobStatus.STARTED,
    JobStatus.SUSPENDED,
    JobStatus.DONE,
)

#: status name -> names it may move to. WARMING_UP -> READY is start-up recovery of a warmup
#: interrupted by a crash; DONE -> STARTED is a user message re-opening a finished job.
LEGAL_MOVES: dict[str, frozenset[str]] = {
    "READY": frozenset({"WARMING_UP", "STARTED", "SUSPENDED", "DONE"}),
    "WARMING_UP": frozenset({"READY", "STARTED", "SUSPENDED", "DONE"}),
    "STARTED": frozenset({"SUSPENDED", "DONE"}),
    "SUSPENDED": frozenset({"STARTED", "DONE"}),
    "DONE": frozenset({"STARTED"}),
}

#: Statuses whose jobs have a step to run (READY and WARMING_UP still need their warmup).
RUNNABLE_NAMES = frozenset({"READY", "WARMING_UP", "STARTED"})


def status_name(status: Any) -> str:
    return str(status)


def check_move(job_id: str, current: Any, new: Any) -> None:
    """Raise IllegalTransitionError unless current -> new is in LEGAL_MOVES."""
    cur, nxt = str(current), str(new)
    if nxt not in LEGAL_MOVES.get(cur, frozenset()):
        allowed = ", ".join(sorted(LEGAL_MOVES.get(cur, ()))) or "nothing"
        raise IllegalTransitionError(
            f"job {job_id}: illegal status change {cur} -> {nxt} (from {cur} only {allowed})"
        )

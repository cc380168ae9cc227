"""What the worker records about outboxes, in its own prefix.

`positions` maps each segment file to the offset up to which its records are applied, and is
written in the same transaction as the writes those records caused: a crash before the
commit loses both (the records are read again), one after it keeps both (they are never read
again). So each record is applied exactly once. `ids` maps each job id a producer chose to the
job made for it; `dead_letters` keeps records that could not be applied, with the reason.
"""

from __future__ import annotations

from typing import Any

import dbzero as db0

#: `positions` value of a segment wholly applied: its file may go once that is committed.
FINISHED = -1
MAX_DEAD_LETTERS = 10_000


@db0.memo(singleton=True, id="statek/OutboxState")
class OutboxState:
    def __init__(self, prefix: str | None = None) -> None:
        db0.set_prefix(self, prefix)
        self.positions: dict[str, int] = {}
        self.ids: dict[str, Any] = {}
        self.dead_letters: list[Any] = []


def find_state(prefix: str) -> Any:
    """The outbox state of `prefix`, or None before a worker first drained an outbox there
    (works in a process that opened the prefix read-only)."""
    return db0.find_singleton(OutboxState, prefix)


def is_outbox_id(text: object) -> bool:
    """Whether `text` has the form of a job id a producer chose (see OutboxWriter.new_ids)."""
    return (type(text) is str and 18 < len(text) <= 40 and text.startswith("ob")
            and text.isascii() and text.isalnum() and text == text.lower())


def lookup(prefix: str, job_id: str) -> Any:
    """The job made for the outbox id `job_id`, or None (not applied yet, or unknown)."""
    found = find_state(prefix)
    if found is None:
        return None
    return found.ids.get(job_id)

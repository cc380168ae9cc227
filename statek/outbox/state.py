"""What the worker records about outboxes, in its own prefix.

`positions` maps each segment file to the offset up to which its records are applied, and is
written in the same transaction as the writes those records caused: a crash before the
commit loses both (the records are read again), one after it keeps both (they are never read
again). So each record is applied exactly once. `made` maps each producer to the jobs made
for the ids it chose, in a list indexed by the id's counter (an append costs a fraction of a
dict write; None where a submit became a dead letter); `dead_letters` keeps records that could
not be applied, with the reason.
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
        self.made: dict[str, Any] = {}  # producer id -> [job for counter 0, 1, ...]
        self.dead_letters: list[Any] = []


def find_state(prefix: str) -> Any:
    """The outbox state of `prefix`, or None before a worker first drained an outbox there
    (works in a process that opened the prefix read-only)."""
    return db0.find_singleton(OutboxState, prefix)


def is_outbox_id(text: object) -> bool:
    """Whether `text` has the form of a job id a producer chose (see OutboxWriter.new_ids)."""
    if not (type(text) is str and 18 < len(text) <= 34 and text.startswith("ob")
            and text.isascii() and text.isalnum()):
        return False
    try:
        int(text[2:], 16)
    except ValueError:
        return False
    return text == text.lower()


def split_id(job_id: str) -> tuple[str, int]:
    """(producer id, counter) of an outbox job id."""
    return job_id[2:18], int(job_id[18:], 16)


def lookup(prefix: str, job_id: str) -> Any:
    """The job made for the outbox id `job_id`, or None (not applied yet, or unknown)."""
    found = find_state(prefix)
    return None if found is None else made_for(found, job_id)


def made_for(state: Any, job_id: str) -> Any:
    producer, counter = split_id(job_id)
    jobs = state.made.get(producer)
    return jobs[counter] if jobs is not None and counter < len(jobs) else None


def settled(prefix: str, job_id: str) -> bool:
    """Whether the worker has applied the submit of outbox id `job_id`: made its job, or
    refused it (its slot holds None; the reason is a dead letter)."""
    found = find_state(prefix)
    if found is None:
        return False
    producer, counter = split_id(job_id)
    jobs = found.made.get(producer)
    return jobs is not None and counter < len(jobs)


def record_made(jobs: Any, counter: int, job: Any) -> None:
    """Put `job` at `counter` in a producer's list (ids may arrive out of order when a
    producer's threads race: the gap is filled with None until its job comes)."""
    size = len(jobs)
    if counter == size:
        jobs.append(job)
    elif counter < size:
        jobs[counter] = job
    else:
        jobs.extend([None] * (counter - size))
        jobs.append(job)

"""Asynchronous acceptance of submits (`Prefer: respond-async`): through the worker's outbox.

A synchronous submit creates its jobs in dbzero and answers after a commit (an fsync of the
store, shared with other requests: statek.server.commit). Measured with the worker running
every job it accepts, that path is CPU-bound on creating the jobs inside the request, and
the commit wait sets a floor under each answer. A request that asks for `respond-async`
instead has its items appended, fsync'd, to an outbox segment this process owns (the same
records and checks as a feeding process, statek.outbox.client) and is answered with their
outbox ids at once: durable when answered. The loop applies the records exactly once
through its outbox drain, recording the segment position in the same transaction; after a
SIGKILL the next worker reads the segment from the committed position.

Until applied, such a job is known only by its outbox id: `apply_pending` applies this
process's records before a read by that id, so a GET right after the answer finds the job.
Listings and counts show it once the loop applied it (normally within an iteration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from statek.outbox.client import OutboxClient
from statek.outbox.state import lookup

#: Items the drain applies per call while a read waits for its job.
APPLY_STEP = 5000


class OutboxAccept:
    """Appends submits to this process's outbox segment of `prefix`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._client: OutboxClient | None = None

    def available(self) -> bool:
        """Whether a worker loop of this process drains the outbox of this prefix (with no
        loop, nothing would apply the records: the synchronous path is taken)."""
        return _drain_of(self.prefix) is not None

    def submit(self, agent: Any, batch: Sequence[Mapping[str, Any] | None],
               locale: str | None, params: Mapping[str, Any]) -> list[str]:
        """Check and append the jobs durably; their outbox ids."""
        if self._client is None:
            self._client = OutboxClient(self.prefix)
        return self._client.submit(agent, batch, locale, params)

    def issued(self, job_id: str) -> bool:
        return self._client is not None and self._client.writer.issued(job_id)


def apply_pending(accept: OutboxAccept, job_id: str) -> Any:
    """The job made for the outbox id `job_id`, applying this process's pending records
    first when it gave out that id and the loop has not applied it yet; None otherwise."""
    found = lookup(accept.prefix, job_id)
    if found is not None or not accept.issued(job_id):
        return found
    found_loop = _drain_of(accept.prefix)
    if found_loop is None:
        return None
    loop, drain = found_loop
    while found is None:
        drain.paused = False
        drain.dirty = True
        changed = drain.drain(APPLY_STEP)
        loop.pending_commits += changed
        found = lookup(accept.prefix, job_id)
        if not changed:
            break
    return found


def _drain_of(prefix: str) -> tuple[Any, Any] | None:
    from statek.runtime.loop import active_loops

    for loop in active_loops():
        drain = loop.outbox
        if drain is not None and drain.prefix == prefix:
            return loop, drain
    return None

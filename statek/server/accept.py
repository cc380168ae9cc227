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

Appends are grouped (`GroupAppend`): one write and one fdatasync, in a thread, for every
request whose records were encoded while the previous append ran; each request is answered
only once the append holding its records returned. Measured at 16 connections, the
fdatasync on the event loop (about 3 ms under load, with the worker's own commits) held
the loop for ~15% of the run, one request at a time.

Until applied, such a job is known only by its outbox id: `apply_pending` applies this
process's records before a read by that id, so a GET right after the answer finds the job.
Listings and counts show it once the loop applied it (normally within an iteration).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from statek.outbox.client import OutboxClient
from statek.outbox.state import lookup
from statek.outbox.writer import OutboxWriter

#: Items the drain applies per call while a read waits for its job.
APPLY_STEP = 5000


class OutboxAccept:
    """Appends submits to this process's outbox segment of `prefix`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._client: OutboxClient | None = None
        self._group: GroupAppend | None = None

    def available(self) -> bool:
        """Whether a worker loop of this process drains the outbox of this prefix (with no
        loop, nothing would apply the records: the synchronous path is taken)."""
        return _drain_of(self.prefix) is not None

    def encode(self, agent: Any, batch: Sequence[Mapping[str, Any] | None],
               locale: str | None, params: Mapping[str, Any]) -> tuple[list[str], list[bytes]]:
        """Check the jobs; their outbox ids and records (raises on bad input, appends
        nothing)."""
        if self._client is None:
            self._client = OutboxClient(self.prefix)
        return self._client.submit_frames(agent, batch, locale, params)

    async def append(self, frames: list[bytes]) -> int:
        """Returns once `frames` are on disk (grouped with other requests' records)."""
        if self._group is None:
            assert self._client is not None, "encode() first"
            self._group = GroupAppend(self._client.writer)
        return await self._group.append(frames)

    async def submit(self, agent: Any, batch: Sequence[Mapping[str, Any] | None],
                     locale: str | None, params: Mapping[str, Any]) -> list[str]:
        """Check and append the jobs durably; their outbox ids."""
        ids, frames = self.encode(agent, batch, locale, params)
        if frames:
            await self.append(frames)
        return ids

    def issued(self, job_id: str) -> bool:
        return self._client is not None and self._client.writer.issued(job_id)

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None


class GroupAppend:
    """One append (a write and an fdatasync, off the event loop) for all the records given
    while the previous one ran; `append` returns once the append holding its records did,
    with the sequence number of the first of them in this producer's outbox. Numbers are
    given when records are handed in (a front puts them in its answers before appending:
    the group is the writer's only user there); after a failed append they run ahead of the
    records on disk, unique and increasing all the same."""

    def __init__(self, writer: OutboxWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._busy = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="statek-outbox-append")
        self.appends = 0  # fdatasyncs made (a test reads how requests were grouped)
        self.next_seq = writer.records  # the number the next record given will have

    async def append(self, frames: list[bytes]) -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        seq = self.next_seq  # a caller may read next_seq before, to put it in its answer
        self.next_seq += len(frames)
        self._frames.extend(frames)
        self._waiting.append(done)
        if not self._busy:
            self._start(loop)
        await done  # a cancelled request leaves its records in the group: they are accepted
        # only once this returns, and the worker applies them whether or not it was answered
        return seq

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        frames, self._frames = self._frames, []
        waiting, self._waiting = self._waiting, []
        self._busy = True
        self.appends += 1
        self._thread.submit(self._run, loop, frames, waiting)

    def _run(self, loop: asyncio.AbstractEventLoop, frames: list[bytes],
             waiting: list[asyncio.Future[None]]) -> None:
        """In the append thread; the loop hears of the end directly (`run_in_executor`'s
        future would take two loop turns to reach the waiting requests, not one)."""
        failed: BaseException | None = None
        try:
            self.writer.append(frames)
        except BaseException as exc:  # every request of the group gets it
            failed = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(self._ended, loop, waiting, failed)

    def _ended(self, loop: asyncio.AbstractEventLoop, waiting: list[asyncio.Future[None]],
               failed: BaseException | None) -> None:
        self._busy = False
        for done in waiting:
            if done.done():
                continue
            if failed is None:
                done.set_result(None)
            else:
                done.set_exception(failed)
        if self._frames:
            self._start(loop)

    def close(self) -> None:
        """Stop the append thread once its last append returned."""
        self._thread.shutdown(wait=True)


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

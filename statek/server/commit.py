"""Group commit for the HTTP API's write requests.

A write request is answered only once its writes are committed, and a commit costs a few
milliseconds (an fsync) whatever it holds: measured 7-10 ms for 100 new jobs, 10-11 ms for
400, 15 ms for 1,000 on this project's test machine. Committing once per request capped
batch submission near 1,000 jobs/s with 4 clients. So the commit waits, briefly, for the
other write requests being handled to join it:

* it runs `WINDOW_S` after the first request asked for it, so the loop can also start the
  jobs just submitted (their first step does not wait for the fsync) and read requests that
  arrived meanwhile;
* it is put off, one loop turn at a time, while write requests have started and not yet
  asked (their bodies are being read or validated) or new ones arrived in the last turn;
* never beyond `MAX_DELAY_S` after the first request asked, so a steady stream of writes
  cannot starve the ones already waiting;
* not at all when another commit (the worker loop's group commit) made the writes durable
  meanwhile: dbzero's finalized state number has reached the state they were written in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import dbzero as db0

WINDOW_S = 0.001
MAX_DELAY_S = 0.025


class GroupCommitter:
    """`durable()` returns once a commit that includes the caller's writes has run."""

    def __init__(self, commit: Callable[[], None], prefix: str | None = None,
                 window: float = WINDOW_S, max_delay: float = MAX_DELAY_S) -> None:
        self._commit_fn = commit
        self.prefix = prefix  # the prefix written to (None: always commit)
        self._state = 0  # its state number the waiting writes were made in
        self.window = window
        self.max_delay = max_delay
        self.writers = 0  # write requests started that have not asked for durability yet
        self.arrivals = 0  # write requests started, ever (a change means more may come)
        self.commits = 0
        self.skipped = 0  # commits found made by someone else
        self._waiting: asyncio.Future[None] | None = None
        self._first = 0.0
        self._seen = 0

    def started(self) -> None:
        """A write request began (its writes, if any, will ask for `durable()`)."""
        self.writers += 1
        self.arrivals += 1

    def finished(self) -> None:
        """A write request that began is done writing (asked for durability, or failed)."""
        self.writers -= 1

    async def durable(self) -> None:
        if self.prefix is not None:
            self._state = max(self._state, db0.get_state_num(self.prefix))
        waiting = self._waiting
        if waiting is None:
            loop = asyncio.get_running_loop()
            waiting = self._waiting = loop.create_future()
            self._first = time.monotonic()
            self._seen = self.arrivals
            loop.call_later(self.window, self._settle)
        await asyncio.shield(waiting)

    def _settle(self) -> None:
        """Commit now, or one loop turn later while other write requests are on their way."""
        busy = self.writers > 0 or self.arrivals != self._seen
        if busy and time.monotonic() - self._first < self.max_delay:
            self._seen = self.arrivals
            asyncio.get_running_loop().call_soon(self._settle)
            return
        waiting, self._waiting = self._waiting, None
        assert waiting is not None
        try:
            if (self.prefix is not None
                    and db0.get_state_num(self.prefix, finalized=True) >= self._state):
                self.skipped += 1
            else:
                self.commits += 1
                self._commit_fn()
        except Exception as exc:  # reported to every request it concerned
            waiting.set_exception(exc)
        else:
            waiting.set_result(None)

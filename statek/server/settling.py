"""Waiting in a front process (statek.server.front) for the worker to apply what it accepted.

A front opens the store read-only: nothing wakes it when the worker commits, so it looks.
One task looks for every waiting request (a `db0.refresh` and an index read per id, every
`POLL_S` while anyone waits) instead of a loop per request: measured with 200 reads waiting
at once, a poll per request cost the front ~7 s of CPU in 22 s.
"""

from __future__ import annotations

import asyncio
import contextlib

import dbzero as db0

from statek.outbox.state import settled

POLL_S = 0.005


class Settling:
    """`wait(job_id, bound_s)`: True once the worker applied (or refused) that outbox id."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def settled(self, job_id: str) -> bool:
        db0.refresh()
        return settled(self.prefix, job_id)

    async def wait(self, job_id: str, bound_s: float) -> bool:
        if self.settled(job_id):
            return True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(job_id, []).append(done)
        if self._task is None:
            self._task = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(done, bound_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self.waiters.get(job_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(done)
                if not waiting:
                    del self.waiters[job_id]

    async def _poll(self) -> None:
        try:
            while self.waiters:
                await asyncio.sleep(POLL_S)
                db0.refresh()
                for job_id, waiting in list(self.waiters.items()):
                    if settled(self.prefix, job_id):
                        for done in waiting:
                            if not done.done():
                                done.set_result(None)
        finally:
            self._task = None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

"""`statek dashboard`: the dashboard from a read-only process while a worker holds the store.

No loop runs here, so nothing signals job changes: a feeder polls the prefix's commit number
and, after each new commit, looks at the jobs that were unfinished at the previous look plus
those unfinished now (bounded by WATCH_LIMIT, index queries by status), feeding the same
EventHub the worker's API uses. The pages then stream from /v1/events and
/v1/jobs/{uuid}/events exactly as against a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import dbzero as db0
from aiohttp import web
from pydantic import SecretStr

from statek.dashboard.sampler import Sample, Sampler
from statek.dashboard.web import Access, Pages, add_routes, make_middleware
from statek.models.job import Job
from statek.models.status import DONE, STATUS_NAMES, status_value
from statek.server.app import _Stream, follow
from statek.server.errors import ApiError
from statek.server.events import EventHub
from statek.server.views import fetch_job

POLL_S = 0.5
WATCH_LIMIT = 5_000
EVENT_BUFFER = 10_000


class Feeder:
    """Turns new commits of `prefix` into hub events; counts the failures it sees."""

    def __init__(self, prefix: str, hub: EventHub) -> None:
        self.prefix = prefix
        self.hub = hub
        self.tracked: set[str] = set()
        self.watched: set[str] = set()  # jobs a page streams (looked at even when DONE)
        self.failed = 0
        self.state = -1

    def poll(self) -> bool:
        state = db0.get_state_num(self.prefix)
        if state == self.state:
            return False
        self.state = state
        unfinished: set[str] = set()
        for number in range(len(STATUS_NAMES)):
            if number == DONE:
                continue
            for job in db0.find(Job, status_value(number)):
                if len(unfinished) >= WATCH_LIMIT:
                    break
                unfinished.add(str(db0.uuid(job)))
        for job_uuid in self.tracked | unfinished | self.watched:
            self._look(job_uuid)
        self.tracked = unfinished
        return True

    def _look(self, job_uuid: str) -> None:
        try:
            job = db0.fetch(job_uuid)
        except (RuntimeError, KeyError):
            return
        known = self.hub.seen.get(job_uuid)
        self.hub.look(job_uuid, job)
        if known is not None and known[0] != DONE and job.state == DONE and job.error:
            self.failed += 1

    async def run(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a commit landing while we read: the
                self.poll()  # next poll sees it whole
            await asyncio.sleep(POLL_S)


def store_sampler(feeder: Feeder) -> Sampler:
    def read() -> Sample:
        counts = [len(db0.find(Job, status_value(n))) for n in range(len(STATUS_NAMES))]
        return Sample(time.time(), counts[DONE], feeder.failed, counts[2], counts[0], 0)

    return Sampler(read, "jobs finished")


async def stream(request: web.Request, hub: EventHub, job_uuid: str | None) -> web.StreamResponse:
    """Server-sent events from now on (a job's stream opens with its console and status)."""
    job = None if job_uuid is None else fetch_job(job_uuid)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    out = _Stream(response, job_uuid)
    point = hub.seq
    if job is not None:
        await out.snapshot(hub, job)
    hub.listeners += 1
    try:
        await follow(hub, out, point)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.listeners -= 1
    return response


def make_app(prefix: str, token: SecretStr | None) -> web.Application:
    access = Access(token, writable=False)
    hub = EventHub(EVENT_BUFFER)
    feeder = Feeder(prefix, hub)
    sampler = store_sampler(feeder)
    app = web.Application(middlewares=[make_middleware(access, guard_api=True)])
    add_routes(app, Pages(access, sampler, "read-only"))

    async def all_events(request: web.Request) -> web.StreamResponse:
        return await stream(request, hub, None)

    async def job_events(request: web.Request) -> web.StreamResponse:
        job_uuid = request.match_info["uuid"]
        try:
            fetch_job(job_uuid)
        except ApiError as exc:
            return exc.response()
        feeder.watched.add(job_uuid)
        try:
            return await stream(request, hub, job_uuid)
        finally:
            feeder.watched.discard(job_uuid)

    async def background(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(feeder.run())
        async with sampler.running():
            yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get("/v1/events", all_events)
    app.router.add_get("/v1/jobs/{uuid}/events", job_events)
    app.cleanup_ctx.append(background)
    return app


async def serve(prefix: str, host: str, port: int, token: SecretStr | None,
                ready: Any = print) -> None:
    """Serve until cancelled; `ready(url)` once listening."""
    from statek.errors import ConfigurationError
    from statek.server.app import _bind
    from statek.server.auth import check_bind

    try:
        check_bind(host, token)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("the HTTP API", "the dashboard")) from None
    sock = _bind(host, port)
    runner = web.AppRunner(make_app(prefix, token), access_log=None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        bound = sock.getsockname()[1]
        ready(f"http://{f'[{host}]' if ':' in host else host}:{bound}/dashboard")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

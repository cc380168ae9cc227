"""`statek serve`: the HTTP API from a process of its own, beside a running worker.

A worker that serves its API accepts jobs on the same core that runs them: measured, the
accepted rate follows the rate the loop runs jobs (~6,000 jobs/s here, W11 in
docs/workloads.md). A front takes the writes off that core. Submits, messages, events and
cancels are checked here, appended to this process's own outbox segment (statek.outbox;
one write and fdatasync for the requests that arrive together, statek.server.accept) and
answered at once with 202: durable when answered, applied by the worker exactly once,
in order. Job ids are outbox ids until the worker made the jobs; every read takes either.

The front opens the store read-only (mode "feed") and never writes it, so it runs whether
or not a worker does: what it accepts waits in its segment for the next worker. Reads,
streams, budgets, the dashboard and metrics are forwarded to the worker's own API, found
in the store's holder file (the worker notes its URL there) or given with `--upstream`.

Idempotency keys: a keyed request's answer is remembered here, and its records travel in
one "keyed" record, so the worker stores the key with what it applied (the same store its
own API uses); a retry after this process restarted is answered from there once applied,
and before that the worker itself makes the repeat name the first request's jobs
(statek.outbox.apply). A key reused for another request: 409 here, a dead letter there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import resource
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import dbzero as db0
from aiohttp import web
from yarl import URL

from statek import _json, store
from statek._version import __version__
from statek.errors import (
    ConfigurationError,
)
from statek.models.idempotency import KEY_TTL, fingerprint, stored_answer
from statek.models.status import STATUS_NAMES
from statek.outbox import records
from statek.outbox.client import OutboxClient
from statek.runtime.os_signals import stop_event
from statek.runtime.queues import check_event_target
from statek.server import validate
from statek.server.accept import GroupAppend
from statek.server.auth import check_bind
from statek.server.errors import ApiError, json_response, refusals
from statek.server.openapi import openapi_document
from statek.server.settling import Settling
from statek.server.views import find_agent
from statek.settings import StatekSettings

log = logging.getLogger("statek.server.front")
_T = TypeVar("_T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Headers not passed between the client and the worker (hop-by-hop, or set anew).
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                  "upgrade", "proxy-authorization", "proxy-authenticate", "host",
                  "content-length"})
_VIA = "X-Statek-Front"  # marks a request this front forwarded (a loop is refused)
#: Cancels remembered, so a repeated cancel is answered as already queued.
_CANCELS_KEPT = 100_000
_JOB_PATH = re.compile(r"/v1/jobs/(ob[0-9a-f]{16,32})(/.*)?")
#: How long a read of a job this front accepted waits for the worker to apply it before
#: answering it PENDING.
READ_WAIT_S = 1.0
#: How long requests in flight may take to finish once SIGTERM/SIGINT came (an append in
#: progress is answered; streams are then closed).
SHUTDOWN_S = 5.0
#: How long a stream of a job this front accepted waits for the worker to apply it.
STREAM_WAIT_S = 300.0


class RecentKeys:
    """Answers to keyed requests this process accepted, kept `ttl` to twice that (two
    generations, the older dropped whole)."""

    def __init__(self, ttl: float = KEY_TTL) -> None:
        self.ttl = ttl
        self.current: dict[str, tuple[str, int, bytes]] = {}
        self.previous: dict[str, tuple[str, int, bytes]] = {}
        self.since = time.monotonic()

    def find(self, key: str) -> tuple[str, int, bytes] | None:
        return self.current.get(key) or self.previous.get(key)

    def remember(self, key: str, answer: tuple[str, int, bytes]) -> None:
        if time.monotonic() - self.since > self.ttl:
            self.previous, self.current = self.current, {}
            self.since = time.monotonic()
        self.current[key] = answer


class Front:
    """The handlers of a front process over `prefix` (open in mode "feed")."""

    def __init__(self, settings: StatekSettings, prefix: str,
                 upstream: str | None = None) -> None:
        self.settings = settings
        self.prefix = prefix
        self.outbox = OutboxClient(prefix)
        self.settling = Settling(prefix)
        stem = store.prefix_stem(prefix)  # found once: later the process may be out of files
        self.lock_path = None if stem is None else f"{stem}.db0.lock"
        self.group = GroupAppend(self.outbox.writer)
        self.keys = RecentKeys()
        self._keyed: dict[str, asyncio.Future[None]] = {}  # keys whose request is appending
        self.given_upstream = upstream.rstrip("/") if upstream else None
        self.marker = f"{os.getpid()}-{secrets.token_hex(8)}"  # sent on: a loop comes back
        self._cancelled: dict[str, None] = {}  # ids whose cancel this front queued, newest last
        self._upstream: str | None = self.given_upstream
        self._session: aiohttp.ClientSession | None = None
        token = settings.http_token
        self.token = None if token is None else token.get_secret_value().encode()

    # ------------------------------------------------------------ middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await validate.answered(request, handler, self.token,
                                       self.settings.http_max_body)

    # ------------------------------------------------------------ writes
    async def submit(self, request: web.Request) -> web.Response:
        body = await validate.json_body(request, validate.SUBMIT_FIELDS, ("agent",))
        agent_id, locale, params = self._submission(body)
        shared = validate.typed(body, "vars", dict, {})
        ids, items, plain = self._jobs(agent_id, [shared], locale, params)
        return await self._accept(request, items, plain,
                                  lambda seq: {"job": ids[0], "status": "PENDING"})

    async def submit_batch(self, request: web.Request) -> web.Response:
        body = await validate.json_body(request, validate.BATCH_FIELDS, ("agent", "vars_batch"))
        agent_id, locale, params = self._submission(body)
        batch = validate.vars_batch(body, self.settings.http_max_batch)
        ids, items, plain = self._jobs(agent_id, batch, locale, params)
        return await self._accept(request, items, plain,
                                  lambda seq: {"jobs": ids, "status": "PENDING"})

    async def push_message(self, request: web.Request) -> web.Response:
        job_id = validate.uuid_text(request.match_info["uuid"], "uuid")
        body = await validate.json_body(request, ("message",), ("message",))
        item = _checked(lambda: self.outbox.message_record(job_id, body["message"]))
        return await self._accept(request, [item], False, lambda seq: {"seq": seq})

    async def push_event(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["agent"], "agent")
        try:
            check_event_target(agent)
        except ConfigurationError as exc:
            raise ApiError(409, "agent_takes_no_events", str(exc), "agent") from None
        body = await validate.json_body(request, ("event",), ("event",))
        item = _checked(lambda: self.outbox.event_record(agent, body["event"]))
        return await self._accept(request, [item], False, lambda seq: {"seq": seq})

    async def cancel(self, request: web.Request) -> web.Response:
        """Queue the cancel (202); `cancelled` is False, and nothing is queued, for a job
        DONE as last read or one whose cancel this front already queued."""
        job_id = request.match_info["uuid"]
        if not validate.ID.fullmatch(job_id):
            raise ApiError(404, "job_not_found", f"no job with uuid {job_id[:80]!r}")
        item = _checked(lambda: self.outbox.cancel_record(job_id))
        found = self.outbox.applied(job_id)
        status = "PENDING" if found is None else STATUS_NAMES[found.state]
        if item is None or job_id in self._cancelled:
            return json_response({"cancelled": False, "status": status,
                                  "queued": item is not None})
        answer = await self._accept(request, [item], False,
                                    lambda seq: {"cancelled": True, "status": status,
                                                 "queued": True})
        self._cancelled[job_id] = None
        if len(self._cancelled) > _CANCELS_KEPT:
            del self._cancelled[next(iter(self._cancelled))]
        return answer

    def _submission(self, body: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
        agent_ref, locale, params = validate.submission(body)
        return str(db0.uuid(self._agent(agent_ref))), locale, params

    def _jobs(self, agent_id: str, batch: list[Any], locale: str | None,
              params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        return _checked(lambda: self.outbox.submit_records(agent_id, batch, locale, params))

    def _agent(self, ref: str, field: str = "agent") -> Any:
        """The agent named, as the worker last committed it (a role first seen is looked up
        after reading the newest commit)."""
        try:
            return find_agent(ref, field)
        except ApiError as exc:
            if exc.status != 404:
                raise
        db0.refresh()
        return find_agent(ref, field)

    async def _accept(self, request: web.Request, items: list[tuple[Any, ...]], plain: bool,
                      answer_for: Callable[[int], dict[str, Any]]) -> web.Response:
        """Append the records (in one "keyed" record when the request has a key) and
        answer 202 once they are on disk; a repeated key replays its first answer."""
        key = validate.idempotency_key(request)
        if key is None:
            answer = _json.dumps(answer_for(self.group.next_seq))
            await self.group.append([records.dumps(item, plain=plain) for item in items])
            return _answer(202, answer)
        print_ = fingerprint(request.method, request.path, await request.read())
        while (appending := self._keyed.get(key)) is not None:
            await asyncio.shield(appending)  # the same key in flight: its answer first
        replay = self._replay(key, print_)
        if replay is not None:
            return replay
        answer = _json.dumps(answer_for(self.group.next_seq))
        frame = records.dumps(("keyed", key, print_, 202, answer.decode(), items),
                              plain=plain)
        done = self._keyed[key] = asyncio.get_running_loop().create_future()
        try:
            await self.group.append([frame])
            self.keys.remember(key, (print_, 202, answer))
        finally:
            del self._keyed[key]
            done.set_result(None)
        return _answer(202, answer)

    def _replay(self, key: str, print_: str) -> web.Response | None:
        found = self.keys.find(key)
        if found is None:
            db0.refresh()
            found = stored_answer(self.prefix, key)
        if found is None:
            return None
        if found[0] != print_:
            raise ApiError(409, "idempotency_key_reused",
                           f"Idempotency-Key {key!r} was used for a different request",
                           "Idempotency-Key")
        return web.Response(status=found[1], body=found[2], content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})


    # ------------------------------------------------------------ its own probes
    async def health(self, request: web.Request) -> web.Response:
        """The front's own liveness (it accepts writes with or without a worker); the
        worker's address as last found, if any."""
        try:
            worker: str | None = self._upstream_url()
        except ApiError:
            worker = None
        return json_response({"ok": True, "version": __version__, "pid": os.getpid(),
                              "prefix": self.prefix, "role": "front", "worker_url": worker})

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(openapi_document(self.settings))

    # ------------------------------------------------------------ everything else
    async def forward(self, request: web.Request) -> web.StreamResponse:
        """The request, answered by the worker's own API (a stream is passed on as it
        comes); a read of a job this front accepted waits until the worker applied it."""
        found = _JOB_PATH.fullmatch(request.path)
        if (found is not None and request.method == "GET"
                and self.outbox.writer.issued(found.group(1))):
            pending = await self._applied(found.group(1), found.group(2) is None)
            if pending is not None:
                return pending
        if request.headers.get(_VIA) == self.marker:
            raise ApiError(508, "forwarding_loop", "this front forwarded the request to itself: "
                           "--upstream must name the worker's API, not the front's")
        data = await request.read() if request.body_exists else None
        upstream = await self._request(request, data)
        try:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            if upstream.status == 401:
                raise ApiError(401, "unauthorized", "the worker behind this front refused the "
                               "request's token (the front passes the Authorization header on: "
                               "give both processes the same STATEK_HTTP_TOKEN)",
                               headers={"WWW-Authenticate": "Bearer"})
            if upstream.content_type != "text/event-stream":
                body = await upstream.read()
                return web.Response(status=upstream.status, body=body, headers=headers)
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # either side went: the client resumes with Last-Event-ID
            return response
        finally:
            upstream.release()

    async def _request(self, request: web.Request,
                       data: bytes | None) -> aiohttp.ClientResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers[_VIA] = self.marker
        for attempt in range(2):
            base = self._upstream_url(refresh=attempt > 0)
            try:
                return await self._client().request(
                    request.method, base + str(request.rel_url), headers=headers, data=data,
                    allow_redirects=False)
            except aiohttp.ClientConnectionError as exc:
                failed: Exception = exc  # the worker may have restarted elsewhere: read again
            except aiohttp.ClientError as exc:  # e.g. an --upstream that is no URL
                failed = exc
                break
        raise ApiError(502, "worker_unreachable",
                       f"the worker's HTTP API at {base} does not answer ({failed}); writes "
                       "are still accepted here and applied when a worker runs")

    def _upstream_url(self, refresh: bool = False) -> str:
        if self.given_upstream is not None:
            return self.given_upstream
        if self._upstream is None or refresh:
            self._upstream = worker_url(self.lock_path)
        if self._upstream is None:
            raise ApiError(503, "no_worker_api",
                           "no worker serving an HTTP API holds this store (start one with "
                           "`statek worker --http-port PORT`, or give `statek serve "
                           "--upstream URL`); submits, messages, events and cancels are "
                           "accepted here meanwhile")
        return self._upstream

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(  # no pool limit: each open stream holds
                connector=aiohttp.TCPConnector(limit=0),  # a connection to the worker
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False)
        return self._session

    async def _applied(self, job_id: str, read: bool) -> web.Response | None:
        """Wait for the worker to apply a job this front accepted: a read of the job
        waits up to `READ_WAIT_S` and then answers it PENDING; a stream (or another read of
        it) waits while a worker runs, up to `STREAM_WAIT_S`. None: forward the request."""
        self._upstream_url()  # no worker: 503 at once, not after the wait
        if read:
            if await self.settling.wait(job_id, READ_WAIT_S):
                return None
            return json_response({"uuid": job_id, "status": "PENDING", "applied": False,
                                  "message": "accepted (on disk); the worker has not applied "
                                             "it yet"})
        deadline = time.monotonic() + STREAM_WAIT_S
        while not await self.settling.wait(job_id, 1.0) and time.monotonic() < deadline:
            self._upstream_url(refresh=True)  # the worker went: 503
        return None

    async def close(self) -> None:
        self.settling.close()
        if self._session is not None:
            await self._session.close()
        self.group.close()
        self.outbox.writer.close()


def _checked(make: Callable[[], _T]) -> _T:
    """`make()`, its refusals as 4xx naming the problem."""
    with refusals(lookups_and_values=True):
        return make()


def _answer(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def worker_url(lock_path: str | None) -> str | None:
    """The HTTP API the worker holding the store noted in the holder file beside its lock
    (`lock_path`), if any. Out of file descriptors: a 503 that says so."""
    if lock_path is None:
        return None
    try:
        info = store.read_holder(lock_path, out_of_files_raises=True)
    except OSError as exc:
        log.warning("cannot read the worker's address: %s", exc)
        raise ApiError(503, "front_out_of_files",
                       f"this front ran out of file descriptors ({exc.strerror}); close idle "
                       "streams or raise its limit (ulimit -n)") from None
    url = None if info is None else info.get("url")
    return url.rstrip("/") if isinstance(url, str) else None


def raise_file_limit() -> None:
    """Each forwarded stream holds two descriptors (client and worker): take the hard limit
    as the soft one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def check_upstream(url: str) -> None:
    """An --upstream that can name a worker's API: http(s)://host[:port]."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise ConfigurationError(f"--upstream {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"--upstream {url!r} must be http(s)://HOST[:PORT], the "
                                 "address of the worker's HTTP API")


def make_app(front: Front) -> web.Application:
    app = web.Application(middlewares=[front.middleware],
                          client_max_size=front.settings.http_max_body)
    app[validate.MAX_BODY] = front.settings.http_max_body
    app.router.add_post("/v1/jobs", front.submit)
    app.router.add_post("/v1/jobs/batch", front.submit_batch)
    app.router.add_post("/v1/jobs/{uuid}/messages", front.push_message)
    app.router.add_post("/v1/jobs/{uuid}/cancel", front.cancel)
    app.router.add_post("/v1/agents/{agent}/events", front.push_event)
    for probe in ("/v1/health", "/healthz", "/readyz"):
        app.router.add_get(probe, front.health)
    app.router.add_get("/v1/openapi.json", front.openapi)
    app.router.add_route("*", "/{tail:.*}", front.forward)
    return app


async def serve(settings: StatekSettings, prefix: str, host: str, port: int,
                upstream: str | None = None,
                ready: Callable[[str], None] = print) -> None:
    """Serve until cancelled; `ready(url)` once listening."""
    from statek.server.app import _bind

    check_bind(host, settings.http_token)
    if upstream is not None:
        check_upstream(upstream)
    raise_file_limit()
    front = Front(settings, prefix, upstream)
    sock = _bind(host, port)
    runner = web.AppRunner(make_app(front), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_S)
    await runner.setup()
    try:
        with stop_event() as stop:  # its handlers go before the clean-up below
            await web.SockSite(runner, sock).start()
            bound = sock.getsockname()[1]
            ready(f"http://{f'[{host}]' if ':' in host else host}:{bound}")
            await stop.wait()  # SIGTERM/SIGINT: stop listening, let requests in flight finish
            log.info("statek serve stopping: requests in flight get up to %s s", SHUTDOWN_S)
    finally:
        await runner.cleanup()
        await front.close()

"""`statek.connect(url, token=...)`: the client API of a worker's HTTP API (statek.server).

`StatekRemoteClient` has `StatekClientAPI`'s methods (submit_new_job, submit_new_jobs_batch,
submit_new_job_ids, get_job, push_message, push_event, cancel_job, set_budget, raise_budget,
get_budget), each also as an `..._async` coroutine, plus listing, counts and the event
stream. Jobs come back as `RemoteJob` snapshots (`refresh()` reads the job again).

Every write carries an Idempotency-Key (one per call, kept across its retries), so a request
retried after a connection error never submits or pushes twice. Needs httpx
(`pip install 'statek[client]'`).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid as _uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from statek import _json
from statek.errors import (
    IllegalTransitionError,
    JobNotFoundError,
    StatekError,
    UnstorableValueError,
)
from statek.models.storable import check_storable_mapping, check_value

#: Jobs per batch request (the server's default http_max_batch); each is all or nothing.
BATCH_CHUNK = 10_000
#: Seconds an event stream read waits for a byte (the server sends a keep-alive every 15).
STREAM_READ_S = 60.0
#: The longest read of `wait(timeout=...)`: under the keep-alive interval, so a quiet
#: stream ends in time to honour the deadline.
WAIT_READ_S = 10.0
_RETRY_STATUS = frozenset({502, 503, 504})
#: Reconnections an event stream makes while the server answers 502-504 (a front whose worker
#: restarts, ~0.2-2 s apart): a stream outlives a worker restart.
STREAM_RETRIES = 12


class _Retryable(Exception):
    """A stream answered 502-504: reconnect; `error` is raised once the retries are spent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class RemoteError(StatekError):
    """The worker's API refused a request: `status`, `code` and its message."""

    def __init__(self, message: str, *, status: int, code: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


class RemoteUnavailableError(StatekError, ConnectionError):
    """The worker could not be reached (after the retries)."""


class RemoteJobNotFoundError(RemoteError, JobNotFoundError):
    pass


class RemoteIllegalTransitionError(RemoteError, IllegalTransitionError):
    pass


class RemoteUnstorableValueError(RemoteError, UnstorableValueError):
    pass


class RemoteBudgetError(RemoteError, ValueError):
    """The worker refused a budget (a bad limit, a job without a budget to raise)."""


class RemoteInvalidParamError(RemoteError, ValueError):
    """The worker refused a job param statek reads (a bad budget or harness limit)."""


_ERRORS: dict[str, type[RemoteError]] = {
    "invalid_param": RemoteInvalidParamError,
    "job_not_found": RemoteJobNotFoundError,
    "illegal_transition": RemoteIllegalTransitionError,
    "unstorable_value": RemoteUnstorableValueError,
    "invalid_budget": RemoteBudgetError,
}


@dataclass(frozen=True)
class RemoteEvent:
    """One server-sent event: `kind` is "status", "console" or "gap"."""

    id: str
    kind: str
    data: dict[str, Any]


class RemoteJob:
    """A job as the API last described it (fields a submit answer lacks are None)."""

    def __init__(self, client: StatekRemoteClient, data: Mapping[str, Any]) -> None:
        self._client = client
        self.data = dict(data)

    @property
    def uuid(self) -> str:
        return str(self.data["uuid"])

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    @property
    def is_done(self) -> bool:
        return self.data.get("status") == "DONE"

    def __getattr__(self, name: str) -> Any:
        if name in ("agent", "exit_status", "error", "console", "chat_log", "usage",
                    "locals", "messages", "previous_results", "cancelled", "created_at",
                    "finished_at", "parent", "budget", "budget_exhausted"):
            return self.data.get(name)
        raise AttributeError(name)

    def refresh(self) -> RemoteJob:
        self.data = self._client.get_job(self.uuid).data
        return self

    async def refresh_async(self) -> RemoteJob:
        self.data = (await self._client.get_job_async(self.uuid)).data
        return self

    def __repr__(self) -> str:
        return f"<RemoteJob {self.uuid} {self.status}>"


def _batch_answer(answer: Mapping[str, Any]) -> list[tuple[str, str]]:
    status = str(answer.get("status", "READY"))
    return [(str(uuid), status) for uuid in answer["jobs"]]


def _ref(thing: Any) -> str:
    """A job or agent given as uuid/role text, a RemoteJob, or a local statek object."""
    if isinstance(thing, str):
        return thing
    if isinstance(thing, RemoteJob):
        return thing.uuid
    import dbzero as db0

    return str(db0.uuid(thing))


class StatekRemoteClient:
    """StatekClientAPI over HTTP. Use as a context manager, or call close()/aclose()."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 retries: int = 5, backoff: float = 0.1) -> None:
        try:
            import httpx
        except ImportError:
            raise ImportError("statek.connect needs httpx: pip install 'statek[client]'") from None
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError(f"a worker's URL is http://HOST:PORT or https://..., not {url!r}")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        if token is None:  # as the worker and the CLI read it
            token = os.environ.get("STATEK_HTTP_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._httpx = httpx
        self._timeout = httpx.Timeout(timeout)
        self._headers = headers
        self._sync: Any = None
        self._async: Any = None

    # ------------------------------------------------------------ plumbing
    def _sync_client(self) -> Any:
        if self._sync is None:
            self._sync = self._httpx.Client(base_url=self.url, headers=self._headers,
                                            timeout=self._timeout)
        return self._sync

    def _async_client(self) -> Any:
        if self._async is None:
            self._async = self._httpx.AsyncClient(base_url=self.url, headers=self._headers,
                                                  timeout=self._timeout)
        return self._async

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def __enter__(self) -> StatekRemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> StatekRemoteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def _prepare(method: str, body: Any, key: str | None) -> tuple[bytes | None, dict[str, str]]:
        headers = {}
        if method == "POST":
            headers["Idempotency-Key"] = key or _uuid.uuid4().hex
        content = None
        if body is not None:
            try:
                content = _json.dumps(body)
            except (TypeError, ValueError, OverflowError) as exc:  # what no job could store
                raise UnstorableValueError(f"request body cannot be sent: {exc}") from None
            headers["Content-Type"] = "application/json"
        return content, headers

    def _result(self, response: Any) -> Any:
        if response.status_code < 400:
            return _json.loads(response.content)
        try:
            error = _json.loads(response.content)["error"]
            code, message, field = error["code"], error["message"], error.get("field")
        except (ValueError, KeyError, TypeError):
            code, message, field = "http_error", response.text[:500], None
        kind = _ERRORS.get(code, RemoteError)
        raise kind(f"{message} (HTTP {response.status_code})", status=response.status_code,
                   code=code, field=field)

    def _unavailable(self, exc: Exception) -> RemoteUnavailableError:
        return RemoteUnavailableError(f"cannot reach the statek worker at {self.url}: {exc!r}"
                                      f" (after {self.retries} retries)")

    def request(self, method: str, path: str, body: Any = None, *,
                params: Mapping[str, Any] | None = None, key: str | None = None) -> Any:
        """One API call, retried on connection errors and 502-504 (writes with one key)."""
        content, headers = self._prepare(method, body, key)
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().request(method, path, content=content,
                                                       headers=headers, params=params)
            except self._httpx.TransportError as exc:
                if attempt == self.retries:
                    raise self._unavailable(exc) from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self.retries:
                    return self._result(response)
            time.sleep(min(2.0, self.backoff * 2**attempt))
        raise AssertionError("unreachable")

    async def request_async(self, method: str, path: str, body: Any = None, *,
                            params: Mapping[str, Any] | None = None,
                            key: str | None = None) -> Any:
        content, headers = self._prepare(method, body, key)
        for attempt in range(self.retries + 1):
            try:
                response = await self._async_client().request(
                    method, path, content=content, headers=headers, params=params)
            except self._httpx.TransportError as exc:
                if attempt == self.retries:
                    raise self._unavailable(exc) from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self.retries:
                    return self._result(response)
            await asyncio.sleep(min(2.0, self.backoff * 2**attempt))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ request shapes
    @staticmethod
    def _submission(agent: Any, locale: str | None,
                    job_params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"agent": _ref(agent)}
        if locale is not None:
            body["locale"] = locale
        if job_params:
            body["params"] = dict(job_params)
        return body

    @staticmethod
    def _chunks(batch: Iterable[Mapping[str, Any] | None]) -> list[list[Any]]:
        items = [None if v is None else _checked_vars(v, i) for i, v in enumerate(batch)]
        return [items[i:i + BATCH_CHUNK] for i in range(0, len(items), BATCH_CHUNK)] or [[]]

    # ------------------------------------------------------------ StatekClientAPI
    def submit_new_job(self, agent: Any, shared_vars: Mapping[str, Any] | None = None,
                       locale: str | None = None, **job_params: Any) -> RemoteJob:
        body = self._submission(agent, locale, job_params)
        body["vars"] = _checked_vars(shared_vars)
        answer = self.request("POST", "/v1/jobs", body)
        return RemoteJob(self, {"uuid": answer["job"], "status": answer["status"]})

    async def submit_new_job_async(self, agent: Any,
                                   shared_vars: Mapping[str, Any] | None = None,
                                   locale: str | None = None, **job_params: Any) -> RemoteJob:
        body = self._submission(agent, locale, job_params)
        body["vars"] = _checked_vars(shared_vars)
        answer = await self.request_async("POST", "/v1/jobs", body)
        return RemoteJob(self, {"uuid": answer["job"], "status": answer["status"]})

    def submit_new_job_ids(self, agent: Any,
                           shared_vars_batch: Iterable[Mapping[str, Any] | None],
                           locale: str | None = None, **job_params: Any) -> list[str]:
        """Jobs in requests of up to BATCH_CHUNK, each all or nothing; returns uuids (outbox
        ids from a front, `statek serve`: the jobs are made once the worker applies them)."""
        return [uuid for uuid, _status in self._submit_batch(agent, shared_vars_batch,
                                                              locale, job_params)]

    async def submit_new_job_ids_async(self, agent: Any,
                                       shared_vars_batch: Iterable[Mapping[str, Any] | None],
                                       locale: str | None = None,
                                       **job_params: Any) -> list[str]:
        return [uuid for uuid, _status in await self._submit_batch_async(
            agent, shared_vars_batch, locale, job_params)]

    def submit_new_jobs_batch(self, agent: Any,
                              shared_vars_batch: Iterable[Mapping[str, Any] | None],
                              locale: str | None = None, **job_params: Any) -> list[RemoteJob]:
        made = self._submit_batch(agent, shared_vars_batch, locale, job_params)
        return [RemoteJob(self, {"uuid": u, "status": status}) for u, status in made]

    async def submit_new_jobs_batch_async(
            self, agent: Any, shared_vars_batch: Iterable[Mapping[str, Any] | None],
            locale: str | None = None, **job_params: Any) -> list[RemoteJob]:
        made = await self._submit_batch_async(agent, shared_vars_batch, locale, job_params)
        return [RemoteJob(self, {"uuid": u, "status": status}) for u, status in made]

    def _submit_batch(self, agent: Any, batch: Iterable[Mapping[str, Any] | None],
                      locale: str | None, job_params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(id, status as answered) of each job: READY from a worker, PENDING from a front."""
        made: list[tuple[str, str]] = []
        for chunk in self._chunks(batch):
            body = {**self._submission(agent, locale, job_params), "vars_batch": chunk}
            made.extend(_batch_answer(self.request("POST", "/v1/jobs/batch", body)))
        return made

    async def _submit_batch_async(self, agent: Any, batch: Iterable[Mapping[str, Any] | None],
                                  locale: str | None,
                                  job_params: Mapping[str, Any]) -> list[tuple[str, str]]:
        made: list[tuple[str, str]] = []
        for chunk in self._chunks(batch):
            body = {**self._submission(agent, locale, job_params), "vars_batch": chunk}
            made.extend(_batch_answer(await self.request_async("POST", "/v1/jobs/batch", body)))
        return made

    def get_job(self, uuid: str) -> RemoteJob:
        return RemoteJob(self, self.request("GET", f"/v1/jobs/{_ref(uuid)}"))

    async def get_job_async(self, uuid: str) -> RemoteJob:
        return RemoteJob(self, await self.request_async("GET", f"/v1/jobs/{_ref(uuid)}"))

    @staticmethod
    def _message(job: Any, message: Any) -> tuple[str, dict[str, Any]]:
        """Path and body of a message, checked as the worker would check it."""
        check_value(message, "message")
        return f"/v1/jobs/{_ref(job)}/messages", {"message": message}

    @staticmethod
    def _event(agent: Any, event: Any) -> tuple[str, dict[str, Any]]:
        """Path and body of an agent event, checked as the worker would check it."""
        check_value(event, "event")
        return f"/v1/agents/{_ref(agent)}/events", {"event": event}

    def push_message(self, job: Any, message: Any) -> int:
        return int(self.request("POST", *self._message(job, message))["seq"])

    async def push_message_async(self, job: Any, message: Any) -> int:
        return int((await self.request_async("POST", *self._message(job, message)))["seq"])

    def push_event(self, agent: Any, event: Any) -> int:
        return int(self.request("POST", *self._event(agent, event))["seq"])

    async def push_event_async(self, agent: Any, event: Any) -> int:
        return int((await self.request_async("POST", *self._event(agent, event)))["seq"])

    def cancel_job(self, job: Any) -> bool:
        return bool(self.request("POST", f"/v1/jobs/{_ref(job)}/cancel")["cancelled"])

    async def cancel_job_async(self, job: Any) -> bool:
        answer = await self.request_async("POST", f"/v1/jobs/{_ref(job)}/cancel")
        return bool(answer["cancelled"])

    # ------------------------------------------------------------ budgets
    @staticmethod
    def _budget(job: Any, path: str, limits: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        return (f"/v1/jobs/{_ref(job)}/budget{path}",
                {k: v for k, v in limits.items() if v is not None})

    def set_budget(self, job: Any, *, tokens: int | None = None, cost: float | None = None,
                   steps: int | None = None, seconds: float | None = None,
                   policy: str | None = None) -> dict[str, Any]:
        """As `StatekClientAPI.set_budget`: the job's own budget, absolute limits."""
        limits = {"tokens": tokens, "cost": cost, "steps": steps, "seconds": seconds,
                  "policy": policy}
        return dict(self.request("POST", *self._budget(job, "", limits))["budget"])

    async def set_budget_async(self, job: Any, *, tokens: int | None = None,
                               cost: float | None = None, steps: int | None = None,
                               seconds: float | None = None,
                               policy: str | None = None) -> dict[str, Any]:
        limits = {"tokens": tokens, "cost": cost, "steps": steps, "seconds": seconds,
                  "policy": policy}
        answer = await self.request_async("POST", *self._budget(job, "", limits))
        return dict(answer["budget"])

    def raise_budget(self, job: Any, *, tokens: int = 0, cost: float = 0.0, steps: int = 0,
                     seconds: float = 0.0) -> dict[str, Any]:
        """As `StatekClientAPI.raise_budget`: add to the limits; held jobs resume."""
        amounts = {"tokens": tokens, "cost": cost, "steps": steps, "seconds": seconds}
        return dict(self.request("POST", *self._budget(job, "/raise", amounts))["budget"])

    async def raise_budget_async(self, job: Any, *, tokens: int = 0, cost: float = 0.0,
                                 steps: int = 0, seconds: float = 0.0) -> dict[str, Any]:
        amounts = {"tokens": tokens, "cost": cost, "steps": steps, "seconds": seconds}
        answer = await self.request_async("POST", *self._budget(job, "/raise", amounts))
        return dict(answer["budget"])

    def get_budget(self, job: Any) -> dict[str, Any] | None:
        """The budget the job runs under (None without one); `held` while one holds it."""
        found = self.request("GET", f"/v1/jobs/{_ref(job)}/budget")["budget"]
        return None if found is None else dict(found)

    async def get_budget_async(self, job: Any) -> dict[str, Any] | None:
        found = (await self.request_async("GET", f"/v1/jobs/{_ref(job)}/budget"))["budget"]
        return None if found is None else dict(found)

    # ------------------------------------------------------------ reading
    def list_jobs(self, status: str | None = None, agent: str | None = None,
                  limit: int = 100, cursor: int | None = None,
                  order: str = "asc") -> dict[str, Any]:
        """One page: {"jobs": [...], "next_cursor": int or None, "total": n}."""
        return dict(self.request("GET", "/v1/jobs",
                                 params=_page(status, agent, limit, cursor, order)))

    async def list_jobs_async(self, status: str | None = None, agent: str | None = None,
                              limit: int = 100, cursor: int | None = None,
                              order: str = "asc") -> dict[str, Any]:
        return dict(await self.request_async("GET", "/v1/jobs",
                                             params=_page(status, agent, limit, cursor, order)))

    def counts(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/counts"))

    def agents(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/agents")["agents"])

    def wait(self, job: Any, timeout: float | None = None) -> RemoteJob:
        """Block until the job is DONE (following its event stream); returns it read anew.
        `timeout` (seconds) bounds the whole wait, however quiet the stream: TimeoutError."""
        if timeout is None:
            for event in self.events(job):
                if _done(event):
                    break
            return self.get_job(_ref(job))
        deadline = time.monotonic() + timeout
        failures = 0
        while (remaining := deadline - time.monotonic()) > 0:
            # a stream read gives up before the server's keep-alive would come, so a quiet
            # stream ends in time; each new stream opens with the job's status
            read_s = min(remaining, WAIT_READ_S)
            try:
                for event in self._stream_once(f"/v1/jobs/{_ref(job)}/events", {}, read_s):
                    failures = 0
                    if _done(event):
                        return self.get_job(_ref(job))
                    if deadline - time.monotonic() < read_s:
                        break  # open a stream whose reads end by the deadline
            except self._httpx.TimeoutException:
                continue
            except self._httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                time.sleep(max(0.0, min(2.0, self.backoff * 2**failures,
                                        deadline - time.monotonic())))
            except _Retryable:  # a front whose worker restarts: until the deadline
                failures += 1
                time.sleep(max(0.0, min(2.0, self.backoff * 2**failures,
                                        deadline - time.monotonic())))
        raise TimeoutError(f"job {_ref(job)} not done after {timeout} s")

    def events(self, job: Any = None, last_event_id: str | None = None) -> Iterator[RemoteEvent]:
        """Follow a job's (or every job's) events; a dropped connection is resumed from the
        last event seen. Runs until the caller stops iterating."""
        path = "/v1/events" if job is None else f"/v1/jobs/{_ref(job)}/events"
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                for event in self._stream_once(path, headers, STREAM_READ_S):
                    failures = 0
                    last_event_id = event.id
                    yield event
            except self._httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                time.sleep(min(2.0, self.backoff * 2**failures))
            except _Retryable as exc:
                failures += 1
                if failures > max(self.retries, STREAM_RETRIES):
                    raise exc.error from None
                time.sleep(min(2.0, self.backoff * 2**failures))

    def _stream_once(self, path: str, headers: dict[str, str],
                     read_s: float) -> Iterator[RemoteEvent]:
        """The events of one connection to an event stream (reads time out after
        `read_s` seconds without a byte)."""
        with self._sync_client().stream("GET", path, headers=headers,
                                         timeout=self._stream_timeout(read_s)) as response:
            if response.status_code >= 400:
                response.read()
                self._refused(response)
            parser = _SseParser()
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event

    async def events_async(self, job: Any = None,
                           last_event_id: str | None = None) -> AsyncIterator[RemoteEvent]:
        path = "/v1/events" if job is None else f"/v1/jobs/{_ref(job)}/events"
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                async with self._async_client().stream(
                        "GET", path, headers=headers,
                        timeout=self._stream_timeout(STREAM_READ_S)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._refused(response)
                    parser = _SseParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            failures = 0
                            last_event_id = event.id
                            yield event
            except self._httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                await asyncio.sleep(min(2.0, self.backoff * 2**failures))
            except _Retryable as exc:
                failures += 1
                if failures > max(self.retries, STREAM_RETRIES):
                    raise exc.error from None
                await asyncio.sleep(min(2.0, self.backoff * 2**failures))

    def _refused(self, response: Any) -> None:
        """Raise the error a stream's 4xx/5xx answer names (502-504: `_Retryable`)."""
        try:
            self._result(response)
        except RemoteError as exc:
            if response.status_code in _RETRY_STATUS:
                raise _Retryable(exc) from None
            raise

    def _stream_timeout(self, read_s: float) -> Any:
        return self._httpx.Timeout(self._timeout.connect or 30.0, read=read_s)


def _done(event: RemoteEvent) -> bool:
    return event.kind == "status" and event.data["status"] == "DONE"


def _checked_vars(shared_vars: Mapping[str, Any] | None,
                  index: int | None = None) -> dict[str, Any]:
    """The shared vars as sent, checked here as the worker would check them, so a value no
    job can store fails with the same error, naming the key, before any request."""
    values = dict(shared_vars or {})
    check_storable_mapping(values, "shared variables" if index is None
                           else f"shared variables #{index}", names=True)
    return values


def _page(status: str | None, agent: str | None, limit: int, cursor: int | None,
          order: str) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, "order": order}
    if status is not None:
        params["status"] = status
    if agent is not None:
        params["agent"] = agent
    if cursor is not None:
        params["cursor"] = cursor
    return params


class _SseParser:
    """Server-sent-event lines in, events out (one per blank line ending data)."""

    def __init__(self) -> None:
        self.event_id = ""
        self.kind = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> RemoteEvent | None:
        if not line:
            event = (RemoteEvent(self.event_id, self.kind, _json.loads("\n".join(self.data)))
                     if self.data else None)
            self.kind, self.data = "message", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            self.event_id = value
        elif name == "event":
            self.kind = value
        elif name == "data":
            self.data.append(value)
        return None


def connect(url: str, token: str | None = None, **options: Any) -> StatekRemoteClient:
    """A client of the worker serving its HTTP API at `url` (see `statek worker
    --http-port`); `token` is its http_token, if it has one (default: the environment's
    STATEK_HTTP_TOKEN, as the CLI reads it)."""
    return StatekRemoteClient(url, token, **options)

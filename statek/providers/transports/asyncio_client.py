"""The asyncio transport: a small HTTP/1.1 client on the event loop's own protocol callbacks.

Why a client of our own: a model call is one POST with a small JSON body and a small reply,
and the general clients pay for what this call never uses. aiohttp spends most of its
per-call CPU in Python layers (request objects, header multidicts, stream readers); pyreqwest
does its HTTP on Tokio threads, and every reply then crosses back to the loop through
`call_soon_threadsafe` and a GIL hand-off, which inside a busy worker costs more than the HTTP
itself (docs/workloads.md, W9). Here a reply is parsed in `data_received` on the loop's thread
and resolves the caller's future directly: one wake-up per call, no thread.

What it speaks: HTTP/1.1 over TCP or TLS, keep-alive connections pooled per host (at most
`max_connections` open; further calls queue, and the callback that frees a connection sends
the next queued request on it, so a queued call's task wakes once), Content-Length, chunked and
read-to-close bodies, 1xx interim replies skipped. Not: proxies (HTTP(S)_PROXY is not read,
as with the other transports), redirects (a 3xx is returned as is), HTTP/2, pipelining. A
body is inflated within `max_response_bytes` as it arrives (`BoundedBody`). A reused
connection that the server closed before answering (a keep-alive race) is retried once on a
new connection; nothing else is retried here.

Per call the transport allocates what must outlive the wait (a future, the call's record) and
no timer: every call has the same timeout, counted from when it gets a connection, so
deadlines come in the order calls get one and one timer, armed for the oldest pending
deadline, expires them all (`_Deadlines`). A call queued for a connection waits untimed here
(the step's `step_timeout` bounds it). Objects held
across a call's wait are what a worker's young garbage collections walk, once per call in
flight (docs/costs.md#cost-table, C28).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Awaitable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from statek.providers.deadline import OrderedDeadlines
from statek.providers.ratelimit import RATE_HEADER_PREFIXES
from statek.providers.transports.base import (
    BodyRefused,
    ConnectionFailed,
    ReplyTimeout,
    RequestFailed,
    TransportConfig,
    WireReply,
)
from statek.providers.transports.body import BodyTooLarge, BoundedBody, body_coding, too_large

__all__ = ["AsyncioTransport"]

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one reply
_MAX_CHUNK_LINE = 1024
_OWS = " \t\r\n\x0b\x0c"  # what is stripped around a header's name and value

# body framing of the reply being read
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_CLOSE, _DONE = range(8)


class _Target(NamedTuple):
    """A URL resolved once: where to connect and the request bytes before Content-Length."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    prefix: bytes


class _Slot(NamedTuple):
    """What a queued call gets instead of a reply when no connection to its host is free: a
    connection to another host (to close) or None, and the slot to open its own in."""

    conn: _Connection | None


class _Call:
    """A request on its way: sent at once on an idle connection, or queued in the pool."""

    __slots__ = ("conn", "deadline", "done", "key", "request", "waiter")

    def __init__(self, key: tuple[str, str, int], request: bytes,
                 waiter: asyncio.Future[Any]) -> None:
        self.key = key
        self.request = request
        self.waiter = waiter  # the WireReply, or a _Slot
        # loop time; `_Deadlines` fails `waiter` past it. Set when the call gets a connection
        # (or a slot to open one), not while it queues for one: the timeout is the server's
        # to answer in, and a call timed out while the server worked on it was sent again
        # (and paid twice); the step's own timeout bounds the queueing
        self.deadline = 0.0
        self.done = False  # the caller has its answer (no timeout is due any more)
        self.conn: _Connection | None = None  # the connection it was sent on

    def send_on(self, conn: _Connection) -> None:
        self.conn = conn
        conn.send(self.request, self.waiter)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request, the callbacks read its reply."""

    def __init__(self, key: tuple[str, str, int], limit: int) -> None:
        self.key = key
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0  # replies read on it (a reused connection may have gone stale)
        self.waiter: asyncio.Future[WireReply] | None = None
        self.got_bytes = False
        self.reusable = False  # the last reply left the connection fit for another request
        self._reset()

    def _reset(self) -> None:
        self.buffer = b""
        self.state = _HEAD
        self.status = 0
        self.retry_after: str | None = None
        self.rate: dict[str, str] | None = None  # rate-limit headers (and Retry-After)
        self.keep_alive = True
        self.remaining = 0
        self.body: BoundedBody | None = None  # made on the first byte an identity body
        self.coding: str | None = None  # the reply's compression, named in its errors

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.state == _TO_CLOSE:
            try:
                self._complete(b"")
            except BodyRefused as refused:
                self._fail(refused)
            return
        self._fail(ConnectionFailed(
            f"server closed the connection before the reply was complete ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.abort()  # bytes nobody asked for (or after a timeout): unusable
            return
        self.got_bytes = True
        try:
            self._read(data)
        except (BodyRefused, ConnectionFailed, RequestFailed) as exc:
            self._fail(exc)
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost finishes a read-to-close body

    # -- the exchange --------------------------------------------------------------------------

    def send(self, request: bytes, waiter: asyncio.Future[WireReply]) -> None:
        self._reset()
        self.waiter = waiter
        self.got_bytes = False
        assert self.transport is not None
        self.transport.write(request)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _complete(self, rest: bytes) -> None:
        try:
            body = self.body.finish() if self.body is not None else b""
        except BodyTooLarge:
            raise too_large(self.status, self.limit, self.coding) from None
        except zlib.error as exc:
            raise BodyRefused(self.status,
                              f"body is not valid {self.coding} data ({exc})") from None
        self._resolve(body, rest)

    def _resolve(self, body: bytes, rest: bytes) -> None:
        self.reusable = self.keep_alive and not rest and not self.closed
        self.state = _DONE
        waiter, self.waiter = self.waiter, None
        self.used += 1
        if waiter is not None and not waiter.done():
            waiter.set_result(WireReply(self.status, body, self.retry_after, self.rate))

    def _feed(self, data: bytes) -> None:
        if self.body is None:
            self.body = BoundedBody(None, self.limit)
        try:
            self.body.feed(data)
        except BodyTooLarge:
            raise too_large(self.status, self.limit, self.coding) from None
        except zlib.error as exc:
            raise BodyRefused(self.status,
                              f"body is not valid {self.coding} data ({exc})") from None

    def _take(self, buffer: bytes) -> bytes:
        """Feed the body up to `remaining` bytes of `buffer` (a Content-Length body or one
        chunk); returns the bytes after them."""
        take = buffer if len(buffer) <= self.remaining else buffer[:self.remaining]
        if take:
            self._feed(take)
        self.remaining -= len(take)
        return buffer[len(take):]

    def _read(self, data: bytes) -> None:
        """Advance the reply's state machine over `data` (head, then body framing)."""
        buffer = self.buffer + data if self.buffer else data
        self.buffer = b""
        while True:
            state = self.state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise RequestFailed(f"reply head over {MAX_HEAD_BYTES:,} bytes")
                    self.buffer = buffer
                    return
                self._head(buffer[:end])
                buffer = buffer[end + 4:]
            elif state == _LENGTH:
                size = self.remaining
                if self.body is None and len(buffer) >= size and size <= self.limit:
                    self._resolve(buffer[:size], buffer[size:])  # the usual reply: one read
                    return
                buffer = self._take(buffer)
                if self.remaining:
                    return
                self._complete(buffer)
                return
            elif state == _TO_CLOSE:
                if buffer:
                    self._feed(buffer)
                return
            elif state == _CHUNK_DATA:
                buffer = self._take(buffer)
                if self.remaining:
                    return
                self.state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buffer) < 2:
                    self.buffer = buffer
                    return
                if buffer[:2] != b"\r\n":
                    raise RequestFailed("malformed chunked body (no CRLF after a chunk)")
                buffer = buffer[2:]
                self.state = _CHUNK_SIZE
            else:  # _CHUNK_SIZE or _TRAILER: a line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > _MAX_CHUNK_LINE:
                        raise RequestFailed("malformed chunked body (chunk line too long)")
                    self.buffer = buffer
                    return
                line, buffer = buffer[:end], buffer[end + 2:]
                if state == _TRAILER:
                    if not line:
                        self._complete(buffer)
                        return
                else:
                    self._chunk_size(line)

    def _chunk_size(self, line: bytes) -> None:
        text = line.split(b";", 1)[0].strip()
        try:
            size = int(text, 16)
        except ValueError:
            size = -1
        if size < 0 or not text.isalnum():
            raise RequestFailed(f"malformed chunked body (chunk size {text[:40]!r})")
        self.remaining = size
        self.state = _CHUNK_DATA if size else _TRAILER

    def _head(self, head: bytes) -> None:
        """Status and headers; picks the body's framing (RFC 9112 section 6.3) and keeps the
        headers admission control reads (rate limits, Retry-After)."""
        first, _, rest = head.partition(b"\r\n")
        parts = first.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise RequestFailed(f"not an HTTP/1.x reply: {first[:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            return  # an interim reply: the real one follows (state stays _HEAD)
        length: str | None = None
        coding: str | None = None
        retry_after: str | None = None
        rate: dict[str, str] | None = None
        chunked = False
        keep_alive = parts[0] == b"HTTP/1.1"
        for line in rest.decode("latin-1").split("\r\n") if rest else ():
            name, colon, value = line.partition(":")
            if not colon:
                raise RequestFailed(f"malformed reply header {line[:80].encode('latin-1')!r}")
            key = name.strip(_OWS).lower()
            text = value.strip(_OWS)
            if key == "content-length":
                length = text
            elif key == "transfer-encoding":
                chunked = "chunked" in text.lower()
            elif key == "connection":
                keep_alive = "close" not in text.lower() and (
                    keep_alive or "keep-alive" in text.lower())
            elif key == "content-encoding":
                coding = text if coding is None else coding
            elif key.startswith(RATE_HEADER_PREFIXES):
                if rate is None:
                    rate = {}
                rate[key] = text
            elif key == "retry-after" and retry_after is None:
                retry_after = text
        if retry_after is not None:
            rate = rate if rate is not None else {}
            rate["retry-after"] = retry_after
        self.status, self.keep_alive = status, keep_alive
        self.retry_after, self.rate = retry_after, rate
        self.coding = body_coding(status, coding)
        if self.coding is not None:
            self.body = BoundedBody(self.coding, self.limit)
        if status in (204, 304):
            self.state, self.remaining = _LENGTH, 0
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            if not (length.isascii() and length.isdigit()):
                raise RequestFailed(f"malformed content-length {length[:40]!r}")
            self.state, self.remaining = _LENGTH, int(length)
        else:
            self.state, self.keep_alive = _TO_CLOSE, False


class AsyncioTransport:
    """`Transport` over `_Connection`s created on the running loop."""

    name = "asyncio"

    def __init__(self, config: TransportConfig) -> None:
        self._config = config
        self._limit = config.max_response_bytes
        self._timeout = config.timeout
        self._ssl = config.ssl_context
        self._targets: dict[str, _Target] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open = 0  # connections counted against max_connections
        self._waiters: deque[_Call] = deque()  # calls queued for a connection, in order
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._deadlines = _Deadlines(self._loop)

    @property
    def closed(self) -> bool:
        return self._closed

    async def post(self, url: str, body: bytes) -> WireReply:
        target = self._targets.get(url) or self._target(url)
        loop = self._loop
        call = _Call(target.key, b"%s%d\r\n\r\n%s" % (target.prefix, len(body), body),
                     loop.create_future())
        reusable = False
        try:
            while True:
                try:
                    got = await self._exchange(target, call)
                    reusable = call.conn is not None and call.conn.reusable
                    return got
                except ConnectionFailed:
                    conn = call.conn
                    if (conn is None or conn.used == 0 or conn.got_bytes
                            or loop.time() >= call.deadline):
                        raise
                    # a keep-alive race (the server had closed it first): once more, anew
                    call.conn = None
                    self._release(conn, False)
                    call.waiter = loop.create_future()
        except BaseException:
            self._hand_back(call.waiter)
            raise
        finally:
            call.done = True
            if call.deadline:  # timed: it got a connection
                self._deadlines.finished()
            if call.conn is not None:
                self._release(call.conn, reusable)

    def _exchange(self, target: _Target, call: _Call) -> Awaitable[WireReply]:
        """The reply to `call`: sent on an idle connection to its host at once (the usual
        case: its future is awaited directly, no coroutine between), else on a new or a
        freed connection."""
        if self._send_idle(target, call):
            return call.waiter
        return self._exchange_queued(target, call)

    def _start_clock(self, call: _Call) -> None:
        """The call has its connection (or a slot to open one): its timeout starts now,
        once (a keep-alive race's second try keeps the first's deadline)."""
        if not call.deadline:
            call.deadline = self._loop.time() + self._timeout
            self._deadlines.watch(call)

    async def _exchange_queued(self, target: _Target, call: _Call) -> WireReply:
        """`call` on a new connection while the pool has room, else once one is freed."""
        loop = self._loop
        if self._open < self._config.max_connections:
            self._open += 1
            self._start_clock(call)
            await self._send_new(target, call)
        else:
            self._waiters.append(call)  # `_pass_on` sends it
        got = await call.waiter
        while isinstance(got, _Slot):  # no connection to this host was handed over
            if loop.time() >= call.deadline:  # expired while its slot was on the way
                raise ReplyTimeout("TimeoutError")
            call.waiter = loop.create_future()  # `_Deadlines` expires the new one
            await self._use_slot(target, call, got.conn)
            got = await call.waiter
        return got  # type: ignore[no-any-return]

    def _send_idle(self, target: _Target, call: _Call) -> bool:
        """Send `call` on an idle connection to its host, if there is one."""
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self._start_clock(call)
                call.send_on(conn)
                return True
            self._free_slot()
        return False

    async def _use_slot(self, target: _Target, call: _Call, conn: _Connection | None) -> None:
        """Send `call` on a connection handed over for another host (closed first: its slot
        is ours) or on a new one in a freed slot."""
        if conn is not None:
            if conn.key == target.key and not conn.closed:
                call.send_on(conn)
                return
            conn.abort()
        await self._send_new(target, call)

    async def _send_new(self, target: _Target, call: _Call) -> None:
        """Send `call` on a new connection, in a slot already counted as open."""
        try:
            conn = await self._connect(target, call.deadline)
        except BaseException:
            self._free_slot()
            raise
        if call.waiter.done():  # timed out or cancelled while connecting
            self._pass_on(conn)
            return
        call.send_on(conn)

    def _hand_back(self, waiter: asyncio.Future[Any]) -> None:
        """A connection or slot handed to a call just as it gave up: to the next call."""
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        got = waiter.result()
        if isinstance(got, _Slot):
            if got.conn is None:
                self._free_slot()
            else:
                self._pass_on(got.conn)

    def _target(self, url: str) -> _Target:
        if self._closed:
            raise ConnectionFailed("the HTTP client is closed")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RequestFailed(f"bad URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        host = parts.hostname
        if scheme not in ("http", "https") or not host:
            raise RequestFailed(f"bad URL {url!r}: only http:// and https:// with a host")
        tls = scheme == "https"
        port = port or (443 if tls else 80)
        host_header = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            host_header += f":{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in path for c in " \r\n"):
            raise RequestFailed(f"bad URL {url!r}: spaces or line breaks in the path")
        headers = b"".join(_header_line(k, v) for k, v in self._config.headers.items()
                           if k.lower() not in ("host", "content-length"))
        prefix = (f"POST {path} HTTP/1.1\r\nhost: {host_header}\r\n".encode("latin-1")
                  + headers + b"content-length: ")
        target = _Target((scheme, host, port), host, port, tls, prefix)
        if len(self._targets) < 64:
            self._targets[url] = target
        return target

    # -- the pool ------------------------------------------------------------------------------

    async def _connect(self, target: _Target, deadline: float) -> _Connection:
        conn = _Connection(target.key, self._limit)
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: conn, target.host, target.port,
                ssl=(self._ssl or ssl.create_default_context()) if target.tls else None,
                server_hostname=target.host if target.tls else None),
                max(0.0, deadline - self._loop.time()))
        except TimeoutError as exc:
            raise ReplyTimeout(f"connecting to {target.host}:{target.port}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"cannot connect to {target.host}:{target.port}: "
                                   f"{exc}") from exc
        return conn

    def _release(self, conn: _Connection, reusable: bool) -> None:
        """Back to the pool, or closed (its slot passed on) after a failed or final exchange."""
        if reusable and not conn.closed and not self._closed:
            self._pass_on(conn)
            return
        conn.abort()
        self._free_slot()

    def _pass_on(self, conn: _Connection) -> None:
        """An idle connection: sends the first queued call to its host on it at once (its
        task wakes once, for the reply), is handed to a queued call for another host, or
        goes back to the pool."""
        while self._waiters:
            call = self._waiters.popleft()
            if call.waiter.done():
                continue  # cancelled while queued
            self._start_clock(call)
            if call.key == conn.key and not conn.closed:
                call.send_on(conn)
            else:
                call.waiter.set_result(_Slot(conn))
            return
        self._idle.setdefault(conn.key, []).append(conn)

    def _free_slot(self) -> None:
        """A connection's slot is free: the first queued call may open one, else it is
        returned."""
        while self._waiters:
            call = self._waiters.popleft()
            if not call.waiter.done():
                self._start_clock(call)
                call.waiter.set_result(_Slot(None))
                return
        self._open -= 1

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        while self._waiters:
            call = self._waiters.popleft()
            if not call.waiter.done():
                call.waiter.set_exception(ConnectionFailed("the HTTP client was closed"))


class _Deadlines(OrderedDeadlines[_Call]):
    """The timeouts of a transport's calls: all have the same timeout, from when a call
    gets a connection, so their deadlines come in the order they are watched; passing one
    fails the call's waiter."""

    __slots__ = ()

    def watch(self, call: _Call) -> None:
        self.add(call)

    def expired(self, item: _Call) -> None:
        if not item.waiter.done():
            item.waiter.set_exception(ReplyTimeout("TimeoutError"))


def _header_line(name: str, value: str) -> bytes:
    """`name: value\\r\\n`; a line break in either would smuggle a header: refused."""
    if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
        raise RequestFailed(f"header {name!r} has a line break or a bad name")
    return f"{name}: {value}\r\n".encode("latin-1")

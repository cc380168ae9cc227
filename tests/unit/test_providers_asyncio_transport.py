"""The asyncio transport: what only a hand-written HTTP/1.1 client can get wrong (framing,
keep-alive races, the pool bound, TLS). tests/unit/test_providers_http.py runs on it too, through
conftest's `each_http_client`."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from statek.errors import ProviderError
from statek.providers import OpenAICompatibleProvider
from statek.providers.transports.asyncio_client import AsyncioTransport
from statek.providers.transports.base import (
    BodyRefused,
    ConnectionFailed,
    ReplyTimeout,
    RequestFailed,
    TransportConfig,
)
from tests.unit.test_providers_http import simple_request

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 whose handler writes raw bytes; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (Content-Length framing, as the transport sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    return await reader.readexactly(length)


def transport(max_connections: int = 10, timeout: float = 5.0,
              limit: int = 1 << 20) -> AsyncioTransport:
    return AsyncioTransport(TransportConfig({"x-test": "1"}, max_connections, timeout, limit))


async def test_chunked_gzip_reply_after_an_interim_one() -> None:
    body = gzip.compress(b'{"ok": true}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await read_request(reader) == b"{}"
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
                     b"X-RateLimit-Remaining-Requests: 7\r\n\r\n")
        for i in range(0, len(body), 5):  # small chunks, each in its own write
            piece = body[i:i + 5]
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\ntrailer: x\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(handler) as server:
        client = transport()
        reply = await client.post(server.url, b"{}")
        await client.aclose()
    assert (reply.status, reply.body) == (200, b'{"ok": true}')
    assert reply.rate_headers == {"x-ratelimit-remaining-requests": "7"}


async def test_keep_alive_reuses_and_a_stale_connection_is_retried_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # two replies, then the next request is dropped unanswered
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        await reader.readuntil(b"\r\n\r\n")

    async with RawServer(handler) as server:
        client = transport(max_connections=1)
        replies = [await client.post(server.url, b"{}") for _ in range(3)]
        await client.aclose()
    assert [r.body for r in replies] == [b"ok"] * 3
    # calls 1-2 share connection 1; call 3 finds it closed unanswered and retries on a new one
    assert server.connections == 2


async def test_pool_bound_and_read_to_close_body() -> None:
    in_flight = peak = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak
        await read_request(reader)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close")
        await writer.drain()

    async with RawServer(handler) as server:
        client = transport(max_connections=3)
        replies = await asyncio.gather(*(client.post(server.url, b"{}") for _ in range(12)))
        await client.aclose()
    assert {r.body for r in replies} == {b"until-close"}
    assert peak <= 3 and server.connections == 12  # each closed after its reply


async def test_failures_map_to_the_transport_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request == b"hang":
            await reader.read()
        elif request == b"garbage":
            writer.write(b"SMTP ready\r\n\r\n")
        elif request == b"huge":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + b"x" * 4096)
        else:  # cut short
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async with RawServer(handler) as server:
        client = transport(timeout=0.3, limit=1000)
        with pytest.raises(ReplyTimeout):
            await client.post(server.url, b"hang")
        with pytest.raises(RequestFailed, match=r"not an HTTP/1\.x reply"):
            await client.post(server.url, b"garbage")
        with pytest.raises(BodyRefused, match="max_response_bytes=1,000"):
            await client.post(server.url, b"huge")
        with pytest.raises(ConnectionFailed, match="before the reply was complete"):
            await client.post(server.url, b"short")
        with pytest.raises(RequestFailed, match="only http"):
            await client.post("ftp://127.0.0.1/x", b"{}")
        await client.aclose()


async def test_header_with_a_line_break_is_refused() -> None:
    provider = OpenAICompatibleProvider("http://127.0.0.1:9/v1", "sk-1\r\nx-evil: 1",
                                        http_client="asyncio", max_retries=0)
    with pytest.raises(ProviderError, match="line break"):
        await provider.complete(simple_request())


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """(key, certificate) for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return key, cert


async def test_https_checks_the_certificate(self_signed: tuple[Path, Path]) -> None:
    key, cert = self_signed
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=served)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        trusting = AsyncioTransport(TransportConfig({}, 2, 10.0, 1000,
                                                    ssl.create_default_context(cafile=cert)))
        assert (await trusting.post(url, b"{}")).body == b"secret"
        await trusting.aclose()
        default = AsyncioTransport(TransportConfig({}, 2, 10.0, 1000,
                                                   ssl.create_default_context()))
        with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await default.post(url, b"{}")
        await default.aclose()
    finally:
        server.close()


async def test_queued_calls_share_the_pool_across_hosts_and_time_out_while_queued() -> None:
    """A call queued for a connection is sent on the one its host frees; one for another host
    gets the freed slot (the connection is closed, a new one opened); the bound holds across
    hosts; a call that waits past its timeout fails with ReplyTimeout and leaves the pool
    usable."""
    open_now = peak = 0
    hold = asyncio.Event()
    hold.set()

    def keep_alive(name: bytes) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal open_now, peak
            open_now += 1
            peak = max(peak, open_now)
            try:
                while True:
                    try:
                        await read_request(reader)
                    except asyncio.IncompleteReadError:
                        return
                    await hold.wait()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + name)
                    await writer.drain()
            finally:
                open_now -= 1
        return handler

    async with RawServer(keep_alive(b"a")) as a, RawServer(keep_alive(b"b")) as b:
        client = transport(max_connections=2, timeout=2.0)  # a bound on failure, and the wait
        urls = [a.url, b.url] * 8
        replies = await asyncio.gather(*(client.post(url, b"{}") for url in urls))
        assert [r.body for r in replies] == [b"a", b"b"] * 8
        assert peak <= 2
        hold.clear()  # both connections now busy until `hold` is set again
        stuck = [asyncio.ensure_future(client.post(a.url, b"{}")) for _ in range(2)]
        with pytest.raises(ReplyTimeout):
            await client.post(a.url, b"{}")  # queued behind them, never sent
        for task in stuck:
            with pytest.raises(ReplyTimeout):
                await task
        hold.set()
        again = await asyncio.gather(*(client.post(a.url, b"{}") for _ in range(4)))
        assert [r.body for r in again] == [b"a"] * 4
        await client.aclose()


async def test_one_timer_times_calls_out_and_keeps_no_pile_of_finished_ones() -> None:
    """Timeouts share one timer (deadlines come in call order): 300 answered calls leave at
    most a bounded queue of finished ones behind, and a later call nobody answers still
    fails with ReplyTimeout, as does one made while it waits."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if request == b"hang":
                await reader.read()  # until the client gives up and drops the connection
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with RawServer(handler) as server:
        client = transport(max_connections=4, timeout=0.4)
        for _ in range(300):
            assert (await client.post(server.url, b"{}")).body == b"{}"
        assert len(client._deadlines) <= 2 * 1 + 64  # compacted: not one entry per call
        first = asyncio.ensure_future(client.post(server.url, b"hang"))
        await asyncio.sleep(0)  # `first` is sent and waiting before `second` starts
        second = asyncio.ensure_future(client.post(server.url, b"hang"))
        for call in (first, second):
            with pytest.raises(ReplyTimeout):
                await call
        assert (await client.post(server.url, b"{}")).body == b"{}"
        await client.aclose()

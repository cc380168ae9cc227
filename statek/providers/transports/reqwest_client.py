"""The pyreqwest transport: Rust's reqwest/hyper under a Python API, installed by `statek[fast]`.

Request building, the HTTP/1.1 exchange and connection pooling run in a Tokio runtime on its
own thread: on W9 (1000 calls in flight on 100 connections) the event loop's thread spends
about half the CPU per call it spends with aiohttp (benchmarks/http_clients.py).
Configured to match the aiohttp transport: no automatic decompression (`BoundedBody`
inflates within the bound), no redirects, no proxy from the environment, at most
`max_connections` calls in flight.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pyreqwest.client import ClientBuilder
from pyreqwest.exceptions import (
    BodyDecodeError,
    BuilderError,
    ClientClosedError,
    NetworkError,
    PyreqwestError,
    RequestTimeoutError,
)

from statek.providers.ratelimit import rate_limit_headers
from statek.providers.transports.base import (
    BodyRefused,
    ConnectionFailed,
    ReplyTimeout,
    RequestFailed,
    TransportConfig,
    WireReply,
)
from statek.providers.transports.body import read_bounded

__all__ = ["ReqwestTransport"]


class ReqwestTransport:
    """`Transport` over a `pyreqwest` client created on the running loop."""

    name = "pyreqwest"

    def __init__(self, config: TransportConfig) -> None:
        self._limit = config.max_response_bytes
        self._closed = False
        # calls wait for a connection here, untimed (the step's timeout bounds it), so the
        # client's timeout runs from sending: see AiohttpTransport
        self._slots = asyncio.Semaphore(config.max_connections)
        self.client = (
            ClientBuilder()
            .default_headers(dict(config.headers))
            .max_connections(config.max_connections)
            .timeout(timedelta(seconds=config.timeout))
            .follow_redirects(False)
            .no_proxy()
            .gzip(False)
            .deflate(False)
            .brotli(False)
            .zstd(False)
            .build()
        )

    @property
    def closed(self) -> bool:
        return self._closed

    async def post(self, url: str, body: bytes) -> WireReply:
        async with self._slots:
            return await self._post(url, body)

    async def _post(self, url: str, body: bytes) -> WireReply:
        try:
            request = self.client.post(url).body_bytes(body).build_streamed()
        except (BuilderError, ValueError) as exc:
            raise RequestFailed(repr(exc)) from exc
        try:
            async with request as response:
                status = response.status
                headers = response.headers
                reader = response.body_reader

                async def next_chunk() -> bytes:
                    chunk = await reader.read_chunk()
                    return b"" if chunk is None else bytes(chunk)

                content = await read_bounded(status, headers.get("content-encoding"),
                                             next_chunk, self._limit)
                retry_after = headers.get("retry-after")
                return WireReply(status, content, retry_after,
                                 rate_limit_headers(headers.items(), retry_after))
        except BodyRefused:
            raise
        except RequestTimeoutError as exc:
            raise ReplyTimeout(type(exc).__name__) from exc
        except (NetworkError, ClientClosedError, BodyDecodeError) as exc:
            # BodyDecodeError: the body stream broke (the connection closed mid-body; the
            # client decodes nothing itself here), a failure worth a retry as in the others
            raise ConnectionFailed(f"{exc.message} ({type(exc).__name__})") from exc
        except PyreqwestError as exc:
            raise RequestFailed(repr(exc)) from exc

    async def aclose(self) -> None:
        self._closed = True
        await self.client.close()

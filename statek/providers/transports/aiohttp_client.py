"""The aiohttp transport: statek's default, pure-Python-installable HTTP client.

One `ClientSession` per transport (so per provider and event loop) keeps connections warm;
at most `max_connections` are open and further calls wait for one. The session's own
decompression is off (`BoundedBody` inflates within the bound) and HTTP(S)_PROXY is not read
(`trust_env` would re-read the environment and ~/.netrc on every request, ~0.4 ms of CPU).
"""

from __future__ import annotations

import asyncio

import aiohttp

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

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """`Transport` over an `aiohttp.ClientSession` created on the running loop."""

    name = "aiohttp"

    def __init__(self, config: TransportConfig) -> None:
        self._limit = config.max_response_bytes
        # calls wait for a connection here, untimed (the step's timeout bounds it): in the
        # connector's queue, `total` ran while they waited, and a call the server was
        # still answering timed out and was sent again (and paid twice)
        self._slots = asyncio.Semaphore(config.max_connections)
        self.session = aiohttp.ClientSession(
            headers=dict(config.headers),
            connector=aiohttp.TCPConnector(limit=config.max_connections,
                                           ssl=config.ssl_context or True),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            auto_decompress=False,
        )

    @property
    def closed(self) -> bool:
        return self.session.closed

    async def post(self, url: str, body: bytes) -> WireReply:
        async with self._slots:
            return await self._post(url, body)

    async def _post(self, url: str, body: bytes) -> WireReply:
        try:
            async with self.session.post(url, data=body, allow_redirects=False) as response:
                try:
                    content = await read_bounded(
                        response.status, response.headers.get("content-encoding"),
                        response.content.readany, self._limit,
                    )
                except BodyRefused:
                    response.close()  # the unread rest is dropped with its connection
                    raise
                retry_after = response.headers.get("retry-after")
                return WireReply(response.status, content, retry_after,
                                 rate_limit_headers(response.headers.items(), retry_after))
        except TimeoutError as exc:  # aiohttp.ServerTimeoutError is one too
            raise ReplyTimeout(type(exc).__name__) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionFailed(f"{exc!s} ({type(exc).__name__})") from exc
        except (aiohttp.ClientError, ValueError) as exc:  # bad URL, unsupported protocol,
            # credentials in the URL beside an auth header (ValueError); str, not repr:
            # aiohttp's repr of a response error quotes the request's headers
            raise RequestFailed(f"{exc!s} ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        await self.session.close()

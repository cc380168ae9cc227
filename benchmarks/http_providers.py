"""Variants of the OpenAI-compatible provider for W9 (benchmarks only, not shipped).

`AiohttpOpenAIProvider` keeps everything statek's provider does around the wire (body
encoding, the reply parser, the decoded-size bound with the same `_BoundedBody`, error mapping
to ProviderError) and swaps httpx for aiohttp. Retries are left out (W9 runs with
`max_retries=0`); a real switch would keep `HTTPProvider._post`'s retry loop around this
exchange. `BoundedHttpxProvider` is the shipped provider with at most `max_connections` calls
inside httpx at once (the rest wait on a semaphore): httpcore's pool re-scans every queued
request against every connection whenever one frees, so 1000 calls queued on 100 connections
cost it milliseconds of CPU per call.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any

import httpx

from statek.errors import ProviderError
from statek.providers.http_base import _CODINGS, _BodyTooLarge, _BoundedBody, error_text
from statek.providers.openai_compat import OpenAICompatibleProvider
from statek.providers.retry import is_retryable_status

if TYPE_CHECKING:  # aiohttp is imported on first use: BoundedHttpxProvider needs none
    import aiohttp


class BoundedHttpxProvider(OpenAICompatibleProvider):
    """The shipped provider, with calls queued on a semaphore instead of in httpx's pool."""

    def __init__(self, *args: Any, max_connections: int = 100, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._gate_size = max_connections
        self._gate: asyncio.Semaphore | None = None
        self._gate_loop: asyncio.AbstractEventLoop | None = None

    async def _exchange(self, client: httpx.AsyncClient,
                        body: bytes) -> tuple[int, bytes, str | None]:
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate_loop is not loop:
            self._gate, self._gate_loop = asyncio.Semaphore(self._gate_size), loop
        async with self._gate:
            return await super()._exchange(client, body)


class AiohttpOpenAIProvider(OpenAICompatibleProvider):
    """`OpenAICompatibleProvider` whose requests go through one pooled `aiohttp.ClientSession`
    per event loop (at most `max_connections` connections, like the httpx pool)."""

    def __init__(self, *args: Any, max_connections: int = 100, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._pool_size = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._pool_size,
                                               limit_per_host=self._pool_size),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auto_decompress=False,  # inflated by _BoundedBody, within the bound
            )
            self._session_loop = loop
        return self._session

    async def aclose(self) -> None:
        session, loop = self._session, self._session_loop
        self._session = self._session_loop = None
        if session is not None and loop is asyncio.get_running_loop():
            await session.close()
        await super().aclose()

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        import aiohttp

        session = self._ensure_session()
        try:
            async with session.post(self.url, data=body, allow_redirects=False) as response:
                status = response.status
                coding = _coding(response.headers.get("content-encoding"))
                bounded = _BoundedBody(coding, self.max_response_bytes)
                async for chunk in response.content.iter_any():
                    bounded.feed(chunk)
                content = bounded.finish()
        except TimeoutError as exc:
            raise ProviderError(f"{self.name}: no reply within {self.timeout:g}s",
                                retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"{self.name}: connection to {self.url} failed: {exc!r}",
                                retryable=True) from exc
        except (_BodyTooLarge, zlib.error) as exc:
            raise ProviderError(f"{self.name}: reply refused: {exc!r}", retryable=False) from exc
        if 200 <= status < 300:
            return status, content
        raise ProviderError(f"{self.name}: HTTP {status}: {error_text(content)}",
                            status=status, retryable=is_retryable_status(status))


def _coding(header: str | None) -> str | None:
    """The one compression of a body (ProviderError for several or an unasked one)."""
    layers = [c.strip().lower() for c in (header or "").split(",")]
    layers = [c for c in layers if c and c != "identity"]
    if not layers:
        return None
    if len(layers) > 1 or layers[0] not in _CODINGS:
        raise ProviderError(f"reply refused: content-encoding {header!r}", retryable=False)
    return _CODINGS[layers[0]]

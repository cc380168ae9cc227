"""Shared plumbing for HTTP chat providers: one pooled client, retries and error mapping.

Subclasses only translate between `ChatRequest`/`ChatReply` and their API's JSON; everything
that can go wrong on the wire is turned into `ProviderError` here, once, for all of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

import httpx

from statek import _json
from statek._version import __version__
from statek.errors import ConfigurationError, ProviderError
from statek.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from statek.providers.types import ChatReply, ChatRequest

__all__ = ["ERROR_TEXT_LIMIT", "HTTPProvider", "MalformedReply", "Sleep", "error_text"]

logger = logging.getLogger("statek.providers")

Sleep = Callable[[float], Awaitable[None]]
ERROR_TEXT_LIMIT = 500  # characters of a server's error text kept in ProviderError messages


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs ~50 ms, too much per client."""
    return httpx.create_ssl_context()


class MalformedReply(Exception):
    """Raised by reply parsers for a 2xx body that lacks what the API promises."""


def _truncate(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def error_text(body: bytes) -> str:
    """The human-readable part of an error body ({"error": {"message": ...}} and kin), truncated."""
    try:
        data = _json.loads(body)
    except ValueError:
        return _truncate(body.decode("utf-8", "replace")) or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return _truncate(err)
        if isinstance(err, dict):
            message = err.get("message")
            if isinstance(message, str) and message:
                kind = err.get("type")
                return _truncate(f"{kind}: {message}" if isinstance(kind, str) else message)
    return _truncate(body.decode("utf-8", "replace"))


class HTTPProvider(ABC):
    """Base of the HTTP providers: lazy pooled `httpx.AsyncClient`, retries, error mapping.

    The client is created on first use inside the running loop and reused for every call, so
    connections stay warm. A provider used from a new event loop (tests, `asyncio.run` twice)
    gets a fresh client, because an httpx client cannot outlive the loop it was made on.
    `sleep` is what retries wait with; tests pass a fake to keep the suite fast.
    """

    #: What a subclass declares: its registry name, model, base URL (None: must be given) and
    #: the endpoint path under the base URL.
    DEFAULT_NAME: str = ""
    DEFAULT_MODEL: str = ""
    DEFAULT_BASE_URL: str | None = None
    ENDPOINT: str = ""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        name: str | None = None,
        default_model: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        extra_headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        max_connections: int = 100,
    ) -> None:
        name = name or self.DEFAULT_NAME
        base_url = base_url or self.DEFAULT_BASE_URL
        if not base_url:
            raise ConfigurationError(f"{name}: a base_url is required")
        if timeout <= 0:
            raise ConfigurationError(f"{name}: timeout must be > 0, got {timeout}")
        if max_connections < 1:
            raise ConfigurationError(f"{name}: max_connections must be >= 1")
        self.name = name
        self.default_model = default_model or self.DEFAULT_MODEL
        self.base_url = base_url.rstrip("/")
        self._url = self.base_url + self.ENDPOINT
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries, backoff_base, backoff_max)
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": f"statek/{__version__}",
            **self._auth_headers(api_key),
            **dict(extra_headers or {}),
        }
        self._transport = transport
        self._sleep: Sleep = sleep or asyncio.sleep
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- what subclasses provide -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Full URL of the completion endpoint."""
        return self._url

    @abstractmethod
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that authenticate (and version) every request."""

    @abstractmethod
    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The API's JSON body for `request` (ProviderError if it cannot be expressed)."""

    @abstractmethod
    def parse_reply(self, data: Any) -> ChatReply:
        """A ChatReply from the decoded 2xx body (MalformedReply if fields are missing)."""

    # -- client lifecycle ----------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The pooled client, or None before the first call / after `aclose`."""
        return self._client

    def _ensure_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            # A client from a previous loop is dropped, not closed: its loop may be gone.
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout),
                limits=self._limits,
                transport=self._transport,
                verify=_ssl_context() if self._transport is None else True,
                follow_redirects=False,
            )
            self._client_loop = loop
        return self._client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections; the next call opens a new client."""
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    # -- the call ------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Send `request`, retrying transient failures; ProviderError is the only exception."""
        try:
            body = _json.dumps(self.build_body(request))
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"{self.name}: request cannot be encoded: {exc}") from exc
        response = await self._post(body)
        try:
            data = _json.loads(response.content)
        except ValueError as exc:
            raise self._malformed(response, f"invalid JSON ({exc})") from exc
        try:
            return self.parse_reply(data)
        except MalformedReply as exc:
            raise self._malformed(response, str(exc)) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed(response, f"{type(exc).__name__}: {exc}") from exc

    def _malformed(self, response: httpx.Response, why: str) -> ProviderError:
        snippet = _truncate(response.content.decode("utf-8", "replace"), 200)
        return ProviderError(
            f"malformed reply from {self.name}: {why}; body: {snippet!r}",
            status=response.status_code,
            retryable=False,
        )

    async def _post(self, body: bytes) -> httpx.Response:
        """POST with retries; returns the first 2xx response or raises ProviderError."""
        client = self._ensure_client()
        attempt = 0
        while True:
            cause: BaseException | None = None
            retry_after: float | None = None
            try:
                response = await client.post(self.url, content=body)
            except httpx.TimeoutException as exc:
                failure = ProviderError(
                    f"{self.name}: no reply within {self.timeout:g}s ({type(exc).__name__})",
                    retryable=True,
                )
                cause = exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure = ProviderError(
                    f"{self.name}: connection to {self.url} failed: {exc!s} ({type(exc).__name__})",
                    retryable=True,
                )
                cause = exc
            except httpx.HTTPError as exc:  # bad URL, unsupported protocol, ...: final
                raise ProviderError(f"{self.name}: request failed: {exc!r}") from exc
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                failure = ProviderError(
                    f"{self.name}: HTTP {status}: {error_text(response.content)}",
                    status=status,
                    retryable=is_retryable_status(status),
                )
                if not failure.retryable:
                    raise failure
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt >= self.retry.max_retries:
                raise ProviderError(
                    f"{failure} (gave up after {attempt + 1} attempts)",
                    status=failure.status,
                    retryable=True,
                ) from cause
            wait = self.retry.delay(attempt, retry_after)
            logger.debug("%s: %s; retry %d in %.3fs", self.name, failure, attempt + 1, wait)
            await self._sleep(wait)
            attempt += 1

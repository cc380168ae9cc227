"""Shared plumbing for HTTP chat providers: one pooled transport, retries, error mapping.

Subclasses only translate between `ChatRequest`/`ChatReply` and their API's JSON; everything
that can go wrong on the wire is turned into `ProviderError` here, once, for all of them:
a hosted API with no key (refused before sending), reply bodies over a size bound (counted
after decompression, while streaming), and token counts no real reply carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from statek import _json
from statek._version import __version__
from statek.errors import ConfigurationError, MissingAPIKeyError, ProviderError
from statek.providers import retry
from statek.providers.ratelimit import (
    DEFER_RATE_LIMITS,
    RateLimitedError,
    RateLimitInfo,
    parse_rate_limits,
)
from statek.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from statek.providers.transports import make_transport, resolve_client
from statek.providers.transports.base import (
    BodyRefused,
    ConnectionFailed,
    ReplyTimeout,
    RequestFailed,
    Transport,
    TransportConfig,
)
from statek.providers.transports.body import ACCEPT_ENCODING
from statek.providers.types import ChatReply, ChatRequest

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ERROR_TEXT_LIMIT",
    "MAX_TOKEN_COUNT",
    "HTTPProvider",
    "MalformedReply",
    "Sleep",
    "error_text",
    "token_count",
]

logger = logging.getLogger("statek.providers")

Sleep = Callable[[float], Awaitable[None]]
ERROR_TEXT_LIMIT = 500  # characters of a server's error text kept in ProviderError messages
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # decoded reply body; a chat reply is far smaller
#: What a transport's `post` may raise (base.py); `_post` maps each to a ProviderError.
_WIRE_ERRORS = (ReplyTimeout, ConnectionFailed, RequestFailed, BodyRefused)
#: Parts of header names whose values are credentials (every AUTH_HEADERS name has one).
_SECRET_HEADER_PARTS = ("key", "token", "auth", "secret", "cookie")


def _check_base_url(name: str, base_url: str, setting: str) -> None:
    """A base URL no request can be sent to is a configuration error, raised once here (a
    job fails at once with it); as a failed request it was retried over three steps."""
    try:
        parts = urlsplit(base_url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
    except ValueError:  # a bad port or bracketed host
        usable = False
    if not usable:
        shown = mask_userinfo(base_url)  # no credentials in the message
        where = f" ({setting})" if setting else ""
        raise ConfigurationError(f"{name}: base URL {shown!r}{where} is not usable: it needs "
                                 "http:// or https:// and a host, e.g. http://127.0.0.1:8000/v1")


def _secrets_of(api_key: str | None, headers: Mapping[str, str], base_url: str) -> tuple[str, ...]:
    """What `HTTPProvider.scrub` hides, longest first (a key inside "Bearer <key>" too)."""
    found = {api_key or ""}
    for name, value in headers.items():
        if any(part in name.lower() for part in _SECRET_HEADER_PARTS):
            found.add(value)
            found.update(value.split()[1:])  # "Bearer <key>": the key alone as well
    # shorter values are placeholders ("none", "ollama"), not secrets: replacing them mangled
    # words and host names in the messages; credentials in a URL are masked by their place
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len,
                        reverse=True))


#: Values shorter than this are not scrubbed as secrets where they appear (see _secrets_of).
MIN_SECRET_CHARS = 8
#: The user-info part of a URL (`user:password@`), with or without the scheme's slashes.
_USERINFO = re.compile(r"(^|//|:/|\s)[^/@\s]*@(?=[^/@\s]+)")


def mask_userinfo(text: str) -> str:
    """`text` with the user and password of any URL in it replaced by "***"."""
    return _USERINFO.sub(r"\1***@", text)


#: One attempt's outcome: the transport's reply (status, body, Retry-After, rate headers) or
#: the error it raised.
_Attempt = tuple[int, bytes, str | None, dict[str, str] | None] | Exception
MAX_TOKEN_COUNT = 10**9  # per usage field: far above any context window, far below overflow


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the CA bundle costs ~50 ms, too much per session.
    certifi's bundle when installed (what statek used before aiohttp), else the system's."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class MalformedReply(Exception):
    """Raised by reply parsers for a 2xx body that lacks what the API promises."""


def token_count(usage: Mapping[str, Any], key: str) -> int:
    """`usage[key]` as a token count; absent or null is 0. Anything but an int in
    [0, MAX_TOKEN_COUNT] (a bool, a float, a negative or absurd number) is MalformedReply:
    accepting it would let a broken server make `max_tokens` budgets meaningless."""
    value = usage.get(key)
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_COUNT:
        raise MalformedReply(
            f"malformed usage: {key!r} is {value!r}, not a token count "
            f"(an integer from 0 to {MAX_TOKEN_COUNT:,})"
        )
    return value


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
    """Base of the HTTP providers: a lazy pooled transport, retries, error mapping.

    The transport (statek/providers/transports: asyncio, aiohttp, or pyreqwest) is
    created on first use inside the running loop and reused for every call, so connections
    stay warm; at most `max_connections` are open, further calls wait for one. A provider
    used from a new event loop (tests, `asyncio.run` twice) gets a fresh transport, because a
    pooled client cannot outlive the loop it was made on. `http_client` picks the client
    ("auto": asyncio, statek's own HTTP/1.1 client). HTTP(S)_PROXY is not read.
    `sleep` is what retries wait with; tests pass a fake to keep the suite fast.

    With no API key (and no auth header in `extra_headers`) a provider pointed at the
    vendor's own host (`HOSTED_HOST`) raises `MissingAPIKeyError` on its first call instead of
    sending a request bound to fail; any other base URL (a local server) may need no key.
    A reply body is read up to `max_response_bytes` after decompression, and the call fails
    beyond that without inflating further (`transports.body.BoundedBody`); bodies
    compressed twice or in a coding other than gzip/deflate are refused.
    """

    #: What a subclass declares: its registry name, model, base URL (None: must be given),
    #: the endpoint path under the base URL, the vendor's host that needs a key, the setting
    #: that supplies it, and the headers that carry one.
    DEFAULT_NAME: str = ""
    DEFAULT_MODEL: str = ""
    DEFAULT_BASE_URL: str | None = None
    ENDPOINT: str = ""
    HOSTED_HOST: str | None = None
    API_KEY_SETTING: str = ""
    BASE_URL_SETTING: str = ""
    BASE_URL_HINT: str = ""  # what the base URL of this API usually looks like
    AUTH_HEADERS: tuple[str, ...] = ("authorization",)

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
        sleep: Sleep | None = None,
        max_connections: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        http_client: str = "auto",
    ) -> None:
        name = name or self.DEFAULT_NAME
        base_url = base_url or self.DEFAULT_BASE_URL
        if not base_url:
            raise ConfigurationError(f"{name}: a base_url is required")
        if timeout <= 0:
            raise ConfigurationError(f"{name}: timeout must be > 0, got {timeout}")
        if max_connections < 1:
            raise ConfigurationError(f"{name}: max_connections must be >= 1")
        if max_response_bytes < 1:
            raise ConfigurationError(
                f"{name}: max_response_bytes must be >= 1, got {max_response_bytes}"
            )
        self.http_client = resolve_client(http_client)
        _check_base_url(name, base_url, self.BASE_URL_SETTING)
        self.name = name
        self.default_model = default_model or self.DEFAULT_MODEL
        self.base_url = base_url.rstrip("/")
        self._url = self.base_url + self.ENDPOINT
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.retry = RetryPolicy(max_retries, backoff_base, backoff_max)
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "accept-encoding": ACCEPT_ENCODING,
            "user-agent": f"statek/{__version__}",
            **self._auth_headers(api_key),
            **dict(extra_headers or {}),
        }
        self._secrets = _secrets_of(api_key, self._headers, base_url)
        self._sleep: Sleep = sleep or asyncio.sleep
        self.max_connections = max_connections
        self._client: Transport | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._key_problem = self._missing_key(api_key)
        #: which account this provider's calls are metered against (admission control keys
        #: its limits by it): a short digest of the key, never the key; "" without one
        self.account = hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""

    def _missing_key(self, api_key: str | None) -> str | None:
        """Why calls cannot succeed for want of a key, or None (a key, an auth header given
        in `extra_headers`, or a base URL other than the vendor's own)."""
        if api_key or self.HOSTED_HOST is None:
            return None
        given = {name.lower() for name, value in self._headers.items() if value}
        if given.intersection(self.AUTH_HEADERS):
            return None
        try:
            host = urlsplit(self.base_url).hostname
        except ValueError:
            return None  # reported as a failed request on first use
        if host is None or host.lower() != self.HOSTED_HOST:
            return None
        setting = f"set {self.API_KEY_SETTING} or " if self.API_KEY_SETTING else ""
        return (
            f"{self.name}: no API key for {self.scrub(self.base_url)}: {setting}pass api_key= "
            "(only a server at another base URL, such as a local one, may need none)"
        )

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
    def client(self) -> Transport | None:
        """The pooled transport, or None before the first call / after `aclose`."""
        return self._client

    def _ensure_client(self) -> Transport:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.closed:
            # A transport from a previous loop is dropped, not closed: its loop may be gone.
            self._client = make_transport(self.http_client, TransportConfig(
                headers=self._headers,
                max_connections=self.max_connections,
                timeout=self.timeout,
                max_response_bytes=self.max_response_bytes,
                ssl_context=_ssl_context(),
            ))
            self._client_loop = loop
        return self._client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections; the next call opens a new session."""
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    # -- the call ------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Send `request`, retrying transient failures; ProviderError is the only exception.

        A 2xx body that cannot be read as a reply (bad JSON, missing fields, impossible token
        counts) is not re-sent here: the server did answer (and may have billed the call), so
        it is reported at once as a non-retryable ProviderError; the step that asked decides
        whether to ask again (see `statek.execution.harness.MAX_PROVIDER_FAILURES`).
        """
        if self._key_problem is not None:
            raise MissingAPIKeyError(self._key_problem)
        try:
            body = _json.dumps(self.build_body(request))
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"{self.name}: request cannot be encoded: {exc}") from exc
        # The first attempt is made here, so a call answered at once takes no coroutine more
        # (each one lives, and is walked by the collector, while the call waits).
        client = self._ensure_client()
        try:
            first: _Attempt = await client.post(self.url, body)
        except _WIRE_ERRORS as exc:
            first = exc
        if not isinstance(first, Exception) and 200 <= first[0] < 300:
            status, content, rate_headers = first[0], first[1], first[3]
        else:
            status, content, rate_headers = await self._post(client, body, first)
        try:
            data = _json.loads(content)
        except ValueError as exc:
            raise self._malformed(status, content, f"invalid JSON ({exc})") from exc
        try:
            reply = self.parse_reply(data)
            if rate_headers is None:
                return reply
            return dataclasses.replace(reply, rate_limits=parse_rate_limits(rate_headers))
        except MalformedReply as exc:
            raise self._malformed(status, content, str(exc)) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed(status, content, f"{type(exc).__name__}: {exc}") from exc

    def _wrong_place(self, status: int, text: str) -> str:
        """For a 404 or 405, where the request went: most often a base URL one path
        segment off (the server's own text rarely says so). Not when the server's text
        speaks of the model: OpenAI and Anthropic answer an unknown model with a 404."""
        if status not in (404, 405) or "model" in text.lower():
            return ""
        setting = f" (base_url, {self.BASE_URL_SETTING})" if self.BASE_URL_SETTING else ""
        hint = f"; {self.BASE_URL_HINT}" if self.BASE_URL_HINT else ""
        return f" (POST {self.scrub(self.url)}: check the base URL{setting}{hint})"

    def scrub(self, what: object) -> str:
        """`str(what)` with this provider's secrets (its key and credential headers, of
        MIN_SECRET_CHARS or more, and any URL's user and password) replaced by "***": error
        texts end up in `job.error`, the chat log (which the model reads) and logs, and a
        client library's may quote the request's headers."""
        text = mask_userinfo(str(what))
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def _malformed(self, status: int, content: bytes, why: str) -> ProviderError:
        snippet = _truncate(self.scrub(content.decode("utf-8", "replace")), 200)
        return ProviderError(
            f"malformed reply from {self.name}: {why}; body: {snippet!r}",
            status=status,
            retryable=False,
        )

    async def _post(
        self, client: Transport, body: bytes, got: _Attempt
    ) -> tuple[int, bytes, dict[str, str] | None]:
        """Retries after a first attempt that got `got` (a reply or a transport error);
        returns the first 2xx (status, body, rate-limit headers) or raises ProviderError
        (RateLimitedError for a 429: at once under DEFER_RATE_LIMITS)."""
        attempt = 0
        while True:
            cause: BaseException | None = None
            retry_after: float | None = None
            limits: RateLimitInfo | None = None
            if isinstance(got, ReplyTimeout):
                failure = ProviderError(
                    f"{self.name}: no reply within {self.timeout:g}s ({self.scrub(got)})",
                    retryable=True,
                )
                cause = got
            elif isinstance(got, ConnectionFailed):
                failure = ProviderError(
                    f"{self.name}: connection to {self.scrub(self.url)} failed: "
                    f"{self.scrub(got)}",
                    retryable=True,
                )
                cause = got
            elif isinstance(got, RequestFailed):
                raise ProviderError(f"{self.name}: request failed: {self.scrub(got)}") from got
            elif isinstance(got, BodyRefused):
                raise ProviderError(
                    f"{self.name}: reply refused: {got.why} (HTTP {got.status})",
                    status=got.status,
                    retryable=False,
                ) from None
            elif isinstance(got, Exception):
                raise got  # not one of the transport's four: never caught above
            else:
                status, content, retry_header, rate_headers = got
                if 200 <= status < 300:
                    return status, content, rate_headers
                text = self.scrub(error_text(content))
                failure = ProviderError(
                    f"{self.name}: HTTP {status}: {text}{self._wrong_place(status, text)}",
                    status=status,
                    retryable=is_retryable_status(status),
                )
                if not failure.retryable:
                    raise failure
                retry_after = parse_retry_after(retry_header)
                if status == 429:
                    limits = parse_rate_limits(rate_headers)
                    if DEFER_RATE_LIMITS.get():
                        raise RateLimitedError(str(failure), rate_limits=limits)
            if attempt >= self.retry.max_retries:
                if failure.status == 429:
                    raise RateLimitedError(
                        f"{failure} (gave up after {attempt + 1} attempts)", rate_limits=limits
                    ) from cause
                raise ProviderError(
                    f"{failure} (gave up after {attempt + 1} attempts)",
                    status=failure.status,
                    retryable=True,
                ) from cause
            listener = retry.on_retry
            if listener is not None:
                # the transport's failure when there was one (a timeout, a refused
                # connection), else the status: labelled as the step labels the error
                listener(self.name, retry.failure_label(cause or failure))
            wait = self.retry.delay(attempt, retry_after)
            logger.debug("%s: %s; retry %d in %.3fs", self.name, failure, attempt + 1, wait)
            await self._sleep(wait)
            attempt += 1
            try:
                got = await client.post(self.url, body)
            except _WIRE_ERRORS as exc:
                got = exc

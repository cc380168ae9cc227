"""What an HTTP transport gives a provider: one POST, its reply read within bounds, and three
kinds of failure the provider maps to retryable or final `ProviderError`s."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = [
    "BodyRefused",
    "ConnectionFailed",
    "ReplyTimeout",
    "RequestFailed",
    "Transport",
    "TransportConfig",
    "WireReply",
]


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Fixed for a transport's life: sent on every request, or bounding every call."""

    headers: Mapping[str, str]
    max_connections: int
    timeout: float  # seconds for a call from when it has a connection: connecting, sending, reading
    max_response_bytes: int  # decoded body; beyond it the call fails without reading on
    ssl_context: ssl.SSLContext | None = None  # for clients built on Python's ssl module


class WireReply(NamedTuple):
    """A reply as the transport read it: status, decoded body, Retry-After header, and the
    rate-limit headers (lower-cased; None when the server sent none) for admission control."""

    status: int
    body: bytes
    retry_after: str | None
    rate_headers: dict[str, str] | None = None


class ReplyTimeout(Exception):
    """No whole reply within the timeout (retryable)."""


class ConnectionFailed(Exception):
    """Connecting, sending or reading failed on the network (retryable)."""


class RequestFailed(Exception):
    """The request cannot be made at all: a bad URL, an unsupported scheme (final)."""


class BodyRefused(Exception):
    """The server answered with a body statek will not read: too large once decoded, an
    unsupported or layered content coding, or data that does not inflate (final)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


class Transport(Protocol):
    """A pooled HTTP client bound to the event loop it was created on."""

    #: "aiohttp" or "pyreqwest": which client carries the calls (shown in errors and logs).
    name: str

    @property
    def closed(self) -> bool:
        """True once `aclose` ran (a new call needs a new transport)."""

    async def post(self, url: str, body: bytes) -> WireReply:
        """POST `body` to `url`; raises only the four errors of this module."""

    async def aclose(self) -> None:
        """Close pooled connections."""

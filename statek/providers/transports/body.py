"""Reading a reply body within a bound, inflating gzip/deflate ourselves.

Both transports switch their client's own decompression off and feed the raw bytes here: a
client inflates a whole network read at once (64 KiB of a gzip bomb is ~64 MiB), while
`BoundedBody` asks zlib for at most the room left plus one byte, so memory stays near the
bound however far a body would expand.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable

from statek.providers.transports.base import BodyRefused

__all__ = [
    "ACCEPT_ENCODING", "BodyTooLarge", "BoundedBody", "body_coding", "read_bounded", "too_large",
]

ACCEPT_ENCODING = "gzip, deflate"  # the codings `BoundedBody` inflates, within its bound
_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(Exception):
    """The decoded body passed its bound."""


def body_coding(status: int, header: str | None) -> str | None:
    """The body's one compression ("gzip", "deflate") from its Content-Encoding header, or
    None; BodyRefused for a body compressed more than once or in a coding not asked for."""
    if header is None:
        return None
    layers = [c for c in (c.strip().lower() for c in header.split(",")) if c and c != "identity"]
    if not layers:
        return None
    if len(layers) > 1:
        raise BodyRefused(
            status,
            f"compressed {len(layers)} times (content-encoding {header!r}): only one layer "
            "is accepted, as each can inflate ~1000x",
        )
    coding = _CODINGS.get(layers[0])
    if coding is None:
        raise BodyRefused(
            status,
            f"content-encoding {header!r} is not supported (asked for {ACCEPT_ENCODING!r})",
        )
    return coding


def too_large(status: int, limit: int, coding: str | None) -> BodyRefused:
    return BodyRefused(
        status,
        f"body exceeds max_response_bytes={limit:,} bytes "
        f"(content-encoding {coding or 'identity'!r}; "
        "STATEK_PROVIDER_MAX_RESPONSE_BYTES raises the limit)",
    )


class BoundedBody:
    """A reply body collected up to `limit` decoded bytes (BodyTooLarge beyond it)."""

    __slots__ = ("_inflater", "_maybe_raw", "limit", "parts", "size")

    def __init__(self, coding: str | None, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        self._inflater = None if coding is None else zlib.decompressobj(_WBITS[coding])
        self._maybe_raw = coding == "deflate"  # some servers send deflate without its header

    def _keep(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise BodyTooLarge
        if piece:
            self.parts.append(piece)

    def feed(self, raw: bytes) -> None:
        """Take the next raw bytes off the wire (zlib.error if they cannot be inflated)."""
        inflater = self._inflater
        if inflater is None:
            self._keep(raw)
            return
        while raw and not inflater.eof:
            try:
                piece = inflater.decompress(raw, self.limit - self.size + 1)
            except zlib.error:
                if not self._maybe_raw:
                    raise
                inflater = self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._maybe_raw = False
                continue
            self._maybe_raw = False
            self._keep(piece)
            raw = inflater.unconsumed_tail

    def finish(self) -> bytes:
        """The whole decoded body."""
        if self._inflater is not None and not self._inflater.eof:
            self._keep(self._inflater.flush())
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


async def read_bounded(status: int, coding_header: str | None,
                       next_chunk: Callable[[], Awaitable[bytes]], limit: int) -> bytes:
    """The decoded body from `next_chunk()` calls (b"" at its end), or BodyRefused once it
    exceeds `limit` (the rest is never read: the caller drops the connection instead)."""
    coding = body_coding(status, coding_header)
    body = BoundedBody(coding, limit)
    try:
        while raw := await next_chunk():
            body.feed(raw)
        return body.finish()
    except BodyTooLarge:
        raise too_large(status, limit, coding) from None
    except zlib.error as exc:
        raise BodyRefused(status, f"body is not valid {coding} data ({exc})") from None

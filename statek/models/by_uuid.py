"""Looking up a stored object by an id that came from outside: typed, sent, pasted.

dbzero 0.7.0 answers such a lookup in three ways besides the object: `exists` is False for
most unknown ids and `fetch` raises RuntimeError ("Invalid UUID"); a well-formed uuid of
another store's prefix makes both raise RuntimeError ("Prefix: N not found"); and some
strings (a lone surrogate) crash the process. Every lookup of an outside id goes through
here, so all of those read as "no such object" and the caller names what was missing.
"""

from __future__ import annotations

from typing import Any

import dbzero as db0

MAX_UUID_CHARS = 64


def looks_like_uuid(text: object) -> bool:
    """Whether `text` may be a dbzero uuid (base-32 text): only such strings are looked up."""
    return (type(text) is str and 0 < len(text) <= MAX_UUID_CHARS and text.isascii()
            and text.isalnum())


def fetch_or_none(uuid: object) -> Any:
    """The object stored under `uuid` in this store, or None when there is none."""
    if not looks_like_uuid(uuid):
        return None
    try:
        return db0.fetch(uuid)
    except Exception:  # several kinds, see the module docstring
        return None

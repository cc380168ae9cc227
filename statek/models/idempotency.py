"""Idempotency keys: a retried write request replays its first answer instead of acting twice.

The key -> (request fingerprint, answer) mapping is stored in the worker's prefix, written in
the transaction (and commit) of the write it answers for, so a retry after a crash or a lost
response finds it. The worker's HTTP API writes it with the request's writes; a request
accepted by a front process (statek.server.front) carries its key in its outbox record, and
the worker's outbox drain records it when it applies that record (statek.outbox.apply).

Keys live between `ttl` and twice that: two generations of dicts, the older dropped as a whole
when the newer one is `ttl` old (no per-key expiry scan).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

import dbzero as db0

from statek.store import on_close

#: How long a key is remembered at least (seconds).
KEY_TTL = 24 * 3600.0


@db0.memo(singleton=True, id="statek/HttpIdempotencyKeys")
class IdempotencyKeys:
    def __init__(self, prefix: str | None = None) -> None:
        db0.set_prefix(self, prefix)
        self.current: dict[str, Any] = {}
        self.previous: dict[str, Any] = {}
        self.current_since = time.time()


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same: method, path and the body's JSON value (key order
    and spacing do not matter; a body that is not JSON counts as its bytes). The standard
    library parses it: integers stay exact, so different big ids never look alike."""
    with contextlib.suppress(ValueError, RecursionError):
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def stored_answer(prefix: str, key: str) -> tuple[str, int, bytes] | None:
    """What the worker stored for `key` (works where `prefix` is open read-only)."""
    keys = db0.find_singleton(IdempotencyKeys, prefix)
    return None if keys is None else _entry(keys, key)


def _entry(keys: Any, key: str) -> tuple[str, int, bytes] | None:
    found = keys.current.get(key)
    if found is None:
        found = keys.previous.get(key)
    if found is None:
        return None
    return str(found[0]), int(found[1]), str(found[2]).encode()


class KeyStore:
    """The worker's view of the stored keys (all calls run on its event loop)."""

    def __init__(self, prefix: str, ttl: float = KEY_TTL) -> None:
        self.keys = IdempotencyKeys(prefix)
        self.ttl = ttl

    def find(self, key: str) -> tuple[str, int, bytes] | None:
        """(fingerprint, status, answer body) stored for `key`, if any."""
        return _entry(self.keys, key)

    def remember(self, key: str, fingerprint: str, status: int, body: bytes) -> None:
        """Record the answer (callers hold the transition of the write it answers)."""
        if time.time() - self.keys.current_since > self.ttl:
            self.keys.previous = self.keys.current
            self.keys.current = {}
            self.keys.current_since = time.time()
        self.keys.current[key] = (fingerprint, status, body.decode())


_stores: dict[str, KeyStore] = {}


def key_store(prefix: str) -> KeyStore:
    found = _stores.get(prefix)
    if found is None:
        found = _stores[prefix] = KeyStore(prefix)
    return found


@on_close
def _forget() -> None:
    _stores.clear()

"""Re-open the store as a new process would find it (no in-memory scheduler or caches)."""

from __future__ import annotations

from pathlib import Path

import dbzero as db0

import statek


def reopen(db_root: Path, *prefixes: str) -> None:
    """What a new worker process sees: the store closed and opened again, `prefixes` open for
    writing (the last one current)."""
    statek.close()
    db0.init(dbzero_root=str(db_root))
    statek.init()
    for prefix in prefixes:
        statek.open_prefix(prefix, "rw")

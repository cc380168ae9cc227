"""Reclaiming finished outbox segments.

A segment is finished once its seal record is applied, or its producer died and everything
it completed is applied. The worker then records it FINISHED (in the transaction of its
last records); once that is committed it deletes the file, then forgets the entry. A crash
in between leaves a FINISHED entry whose file may or may not exist: both are handled the
same way on the next start (delete if present, then forget), so a segment's records are
never read twice and no file is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dbzero as db0

from statek import store

if TYPE_CHECKING:
    from statek.outbox.drain import OutboxDrain

#: A temporary file (a producer died between creating and naming a segment) is removed
#: after this many seconds, when no producer holds its lock.
TEMPORARY_AGE_S = 60.0


def pending_state(prefix: str) -> int:
    """The state number the next commit of `prefix` will finalise."""
    return int(db0.get_state_num(prefix))


def reclaim(drain: OutboxDrain) -> int:
    """Delete the files of finished segments whose FINISHED mark is committed; returns how
    many went."""
    committed = int(db0.get_state_num(drain.prefix, finalized=True))
    gone = [name for name, marked in drain.finished.items() if committed >= marked]
    if not gone:
        return 0
    for name in gone:
        segment = drain.segments.pop(name, None)
        if segment is not None:
            segment.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(drain.directory / name)
    with store.transition():
        for name in gone:
            drain.state.positions.pop(name, None)
            drain.positions.pop(name, None)
            del drain.finished[name]
    return len(gone)


def sweep_temporary(directory: Path) -> None:
    """Remove old temporary segment files no producer holds."""
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if not entry.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < TEMPORARY_AGE_S:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.unlink(entry.path)
                finally:
                    os.close(fd)

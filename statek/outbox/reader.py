"""The worker's view of one segment file: read records from a position, tell a finished
segment (sealed, or its producer dead) from one still being written.

Reading never changes the file. A frame cut short or failing its checksum at the tail is
"not yet" while the producer lives (it may be mid-write) and the end of the segment once it
is dead: a producer killed mid-append never returned, so that call was never accepted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from statek.outbox import records

log = logging.getLogger("statek.outbox")

#: Bytes read from a segment at a time (about 25 records of 100 jobs).
READ_CHUNK = 64 * 1024


class Segment:
    """One producer's segment file, opened read-only."""

    __slots__ = ("damaged", "fd", "name", "number", "path", "producer", "sealed_at")

    def __init__(self, path: Path, producer: str, number: int) -> None:
        self.path = path
        self.name = path.name
        self.producer = producer
        self.number = number
        self.fd: int | None = None
        self.sealed_at: int | None = None  # offset after the seal record, once read
        self.damaged = False  # the bytes after the last good frame fail their checksum

    def open(self) -> bool:
        """Open the file; False when it is gone."""
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
        return True

    def size(self) -> int:
        if not self.open():
            return 0
        assert self.fd is not None
        return os.fstat(self.fd).st_size

    def read(self, offset: int) -> Iterator[tuple[int, Any]]:
        """The complete records after `offset`, decoded one at a time as the caller asks
        (a drain applies a few and stops), as (offset after it, item); reading stops at a seal
        (`sealed_at` is set) or at damage (`damaged` is set)."""
        if not self.open():
            return
        assert self.fd is not None
        data = os.pread(self.fd, READ_CHUNK, offset)
        frames, _end, damaged = records.split(data, offset)
        if not frames and len(data) >= records.HEADER.size and not damaged:
            size, _crc = records.HEADER.unpack_from(data, 0)  # one frame over READ_CHUNK
            data = os.pread(self.fd, records.HEADER.size + size, offset)
            frames, _end, damaged = records.split(data, offset)
        self.damaged = damaged
        for end, payload in frames:
            try:
                item = records.loads(payload)
            except records.RecordError as exc:
                item = ("bad", str(exc))
            if type(item) is tuple and item[:1] == ("end",):
                self.sealed_at = end
                yield end, item
                return
            yield end, item

    def producer_alive(self) -> bool:
        """Whether the producer still holds the segment's lock (it takes it before the file
        gets its name and keeps it until it seals the segment or dies)."""
        if not self.open():
            return False
        assert self.fd is not None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

"""The producer's side: durable appends to this process's own outbox segment.

Each producer process owns its segment files (dbzero's rule, one writer per file, applied
to plain files): it creates one under a temporary name, takes an exclusive `flock` on it and
only then renames it into place, so the worker can tell a live producer (lock held) from a
dead one (lock free) by trying the lock. An append is one `write` of whole frames followed
by `fdatasync`: when it returns, the records survive the producer's death and the machine's.
A full segment ends with a seal record and the next one starts; `close` seals the last.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path

from statek import store
from statek.outbox import layout, records
from statek.outbox.wake import Notifier

#: Segment size after which the producer seals it and starts the next.
SEGMENT_BYTES = 16 * 1024 * 1024
SEAL = records.dumps(("end",))


class OutboxWriter:
    """Appends records to the outbox in `directory` (thread-safe; a forked child starts its
    own segments instead of writing into its parent's)."""

    def __init__(self, directory: Path, store_file: Path) -> None:
        self.directory = directory
        self.store_file = store_file
        self._lock = threading.Lock()  # held across a write and its fdatasync
        self._ids_lock = threading.Lock()  # ids never wait for an fdatasync in progress
        self._fd: int | None = None
        self._pid = 0
        self._producer = ""
        self._number = 0
        self._size = 0
        self._ids = 0
        self._records = 0
        self._notifier: Notifier | None = None

    # ------------------------------------------------------------ ids
    def new_ids(self, count: int) -> list[str]:
        """`count` fresh job ids: "ob" + this producer's id + a counter, lower-case hex, so
        never a dbzero uuid (upper-case base-32)."""
        if self._pid != os.getpid():
            with self._lock:
                self._own()
        with self._ids_lock:
            first = self._ids
            self._ids += count
            prefix = "ob" + self._producer
        return [f"{prefix}{n:x}" for n in range(first, first + count)]

    def issued(self, job_id: str) -> bool:
        """Whether this process gave out `job_id` (so a missing job is pending, not unknown)."""
        prefix = "ob" + self._producer
        if self._pid != os.getpid() or not job_id.startswith(prefix):
            return False
        try:
            return int(job_id[len(prefix):], 16) < self._ids
        except ValueError:
            return False

    @property
    def records(self) -> int:
        """Records this process appended (the sequence number of the next one)."""
        return self._records if self._pid == os.getpid() else 0

    # ------------------------------------------------------------ appending
    def append(self, frames: Sequence[bytes]) -> int:
        """Write the framed records durably, in order; returns the sequence number (of this
        producer) of the first one."""
        data = b"".join(frames)
        with self._lock:
            fd = self._segment()
            _write_all(fd, data)
            os.fdatasync(fd)
            self._size += len(data)
            first = self._records
            self._records += len(frames)
            if self._size >= SEGMENT_BYTES:
                self._seal()
            notifier = self._notifier
        if notifier is not None:
            notifier.notify()
        return first

    def close(self) -> None:
        """Seal the current segment (the worker reclaims it once read)."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                with contextlib.suppress(OSError):
                    self._seal()
            if self._notifier is not None:
                self._notifier.notify()
                self._notifier.close()
                self._notifier = None

    # ------------------------------------------------------------ segments
    def _own(self) -> None:
        """A new producer id in a new process (after a fork the parent's lock is shared)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._producer = secrets.token_hex(8)
            self._number = 0
            self._ids = 0
            self._records = 0
            self._fd = None

    def _segment(self) -> int:
        self._own()
        if self._fd is None:
            self._fd = self._create()
            self._size = 0
        return self._fd

    def _create(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._notifier is None:
            self._notifier = Notifier(self.store_file)
        self._number += 1
        name = layout.segment_name(self._producer, self._number)
        temporary = self.directory / f".tmp-{name}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                     | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(temporary, self.directory / name)
            _sync_directory(self.directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return fd

    def _seal(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _write_all(fd, SEAL)
            os.fdatasync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_writers: dict[str, OutboxWriter] = {}
_writers_lock = threading.Lock()


def writer_for(prefix: str) -> OutboxWriter:
    """This process's writer for the outbox of `prefix` (one per prefix)."""
    with _writers_lock:
        found = _writers.get(prefix)
        if found is None:
            found = OutboxWriter(layout.directory_of(prefix), layout.store_file_of(prefix))
            _writers[prefix] = found
        return found


@store.on_close
@atexit.register
def close_writers() -> None:
    """Seal every segment this process writes (on `statek.close()` and at exit)."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        writer.close()

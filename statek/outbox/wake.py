"""Waking the worker within milliseconds of a new outbox record, without polling.

The worker binds a Unix datagram socket in Linux's abstract namespace, named after the
device and inode of the prefix's store file (no file to clean up, no path-length limit, gone
when the worker dies). A producer sends one empty datagram after each durable append; a send that
finds no worker, or a full socket buffer (the worker is already due to look), is ignored.
The worker still looks at the outbox about once a second (the loop's idle check), which
catches a lost wake-up.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def address(store_file: Path) -> bytes:
    """The abstract socket name of the outbox of the prefix stored in `store_file`."""
    info = os.stat(store_file)
    return f"\0statek-outbox-{info.st_dev:x}-{info.st_ino:x}".encode()


class Notifier:
    """A producer's sending end (one socket, reused)."""

    def __init__(self, store_file: Path) -> None:
        self.target = address(store_file)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def notify(self) -> None:
        with contextlib.suppress(OSError):  # no worker listening, or its buffer is full
            self.sock.sendto(b"", self.target)

    def close(self) -> None:
        self.sock.close()


class Listener:
    """The worker's receiving end: readable when a producer has appended."""

    def __init__(self, store_file: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.bind(address(store_file))
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> int:
        """Read every pending datagram; returns how many there were."""
        count = 0
        while True:
            try:
                self.sock.recv(1)
            except (BlockingIOError, InterruptedError):
                return count
            except OSError:
                return count
            count += 1

    def close(self) -> None:
        self.sock.close()

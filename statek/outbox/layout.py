"""Where a prefix's outbox lives and how its segment files are named.

`<dbzero root>/<prefix>.outbox/` beside the prefix's file. Each producer process writes its
own segments, `<producer id>-<number>.seg`: a producer id is random per process (and per
fork), numbers count up, so a name is never reused and the worker can drop its record of a
segment once the file is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

from statek import store
from statek.errors import StatekError

SUFFIX = ".seg"
_NAME = re.compile(r"([0-9a-f]{16})-([0-9]{8})\.seg")


class OutboxUnavailableError(StatekError):
    """The outbox of a prefix cannot be located (its store file is not open here)."""


def directory_of(prefix: str) -> Path:
    """The outbox directory of the open prefix `prefix`."""
    stem = store.prefix_stem(prefix)
    if stem is None:
        raise OutboxUnavailableError(
            f"cannot locate the files of prefix {prefix!r} (the outbox lives beside them; "
            "Linux's /proc/self/fd is needed to find them)")
    return Path(str(stem) + ".outbox")


def store_file_of(prefix: str) -> Path:
    """The file of the open prefix `prefix` (wake-ups are addressed by its identity)."""
    return Path(str(directory_of(prefix))[: -len(".outbox")] + ".db0")


def segment_name(producer: str, number: int) -> str:
    return f"{producer}-{number:08d}{SUFFIX}"


def parse_name(name: str) -> tuple[str, int] | None:
    """(producer id, number) of a segment file name; None for any other file."""
    found = _NAME.fullmatch(name)
    if found is None:
        return None
    return found.group(1), int(found.group(2))

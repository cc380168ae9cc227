"""GroupAppend (statek.server.accept): the records of requests that arrive while an append
runs go out together in the next one, and no request returns before its records' append
did. A fake writer stands in for the segment file: its append blocks until the test lets
it go, so the grouping is decided by events, not by timing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from statek.server.accept import GroupAppend


class _GatedWriter:
    """Records each append's frames; each append waits for `release` (set per call)."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.fail_next = False
        self.records = 0

    def append(self, frames: list[bytes]) -> int:
        self.calls.append(list(frames))
        self.started.release()
        self.release.acquire(timeout=60)  # failure bound only: the test releases it
        if self.fail_next:
            self.fail_next = False
            raise OSError(28, "No space left on device")
        return 0


async def _started(writer: _GatedWriter) -> None:
    assert await asyncio.to_thread(writer.started.acquire, True, 60)


async def test_requests_arriving_during_an_append_share_the_next_one() -> None:
    writer = _GatedWriter()
    group = GroupAppend(writer)  # type: ignore[arg-type]
    try:
        first = asyncio.create_task(group.append([b"a"]))
        await _started(writer)
        later = [asyncio.create_task(group.append([b"b", b"c"])),
                 asyncio.create_task(group.append([b"d"]))]
        await asyncio.sleep(0)  # both are queued behind the running append
        assert not first.done() and not any(t.done() for t in later)
        writer.release.release()
        await asyncio.wait_for(first, 60)
        await _started(writer)  # the second append holds both requests' records, in order
        assert writer.calls == [[b"a"], [b"b", b"c", b"d"]]
        assert not any(t.done() for t in later)  # not answered before it returned
        writer.release.release()
        numbers = await asyncio.wait_for(asyncio.gather(*later), 60)
        assert group.appends == 2
        assert (first.result(), numbers) == (0, [1, 3])  # each request's first record
    finally:
        group.close()


async def test_a_failed_append_fails_every_request_in_it_and_the_next_group_goes_on() -> None:
    writer = _GatedWriter()
    group = GroupAppend(writer)  # type: ignore[arg-type]
    try:
        writer.fail_next = True
        doomed = [asyncio.create_task(group.append([b"x"]))]
        await _started(writer)
        queued = asyncio.create_task(group.append([b"y"]))
        writer.release.release()
        with pytest.raises(OSError, match="No space"):
            await asyncio.wait_for(doomed[0], 60)
        await _started(writer)
        writer.release.release()
        await asyncio.wait_for(queued, 60)
        assert writer.calls == [[b"x"], [b"y"]]
        assert queued.result() == 1  # numbers stay unique after a failure
    finally:
        group.close()


async def test_a_cancelled_request_does_not_stop_the_others_in_its_group() -> None:
    writer = _GatedWriter()
    group = GroupAppend(writer)  # type: ignore[arg-type]
    try:
        first = asyncio.create_task(group.append([b"1"]))
        await _started(writer)
        gone = asyncio.create_task(group.append([b"2"]))
        kept = asyncio.create_task(group.append([b"3"]))
        await asyncio.sleep(0)
        gone.cancel()
        writer.release.release()
        await asyncio.wait_for(first, 60)
        await _started(writer)
        writer.release.release()
        await asyncio.wait_for(kept, 60)
        results: list[Any] = await asyncio.gather(gone, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert writer.calls == [[b"1"], [b"2", b"3"]]  # appended all the same (never acked)
    finally:
        group.close()

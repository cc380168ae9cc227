"""The worker's side: apply every producer's new records each loop iteration.

`OutboxDrain.drain` runs in the loop's iteration (statek.runtime.loop). It looks only when
woken (a producer's datagram, see statek.outbox.wake) or when the safety look is due (about
once a second), reads each segment from the position recorded in the worker's prefix, and
applies the records and the new positions in one transition; the loop's group commit makes
them durable together. Segments of one producer are read in order and a later one only once
the earlier is finished, so a message never overtakes the job it was sent to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from statek import signals, store
from statek.models.job import log_reopened
from statek.outbox import layout, reclaim
from statek.outbox.apply import Applier
from statek.outbox.reader import Segment
from statek.outbox.state import FINISHED, OutboxState, find_state
from statek.outbox.wake import Listener

log = logging.getLogger("statek.outbox")

#: Seconds between the safety looks that need no wake-up (new producers are also announced
#: by a datagram; this catches a lost one and finds segments whose producer died).
LOOK_EVERY_S = 1.0


class OutboxDrain:
    """Drains the outbox of `prefix` (open read-write in this process)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.directory = layout.directory_of(prefix)
        self.store_file = layout.store_file_of(prefix)
        self._state = find_state(prefix)  # made on first use: a worker fed by no one
        saved = {} if self._state is None else self._state.positions  # writes nothing
        self.positions: dict[str, int] = dict(saved.items())
        self.segments: dict[str, Segment] = {}
        self.finished: dict[str, int] = {  # segment -> state number that must be committed
            name: 0 for name, at in self.positions.items() if at == FINISHED}
        self.dirty = True
        self.paused = False  # a full drain waits for the event loop to run once
        self.last_look = 0.0
        self.turn = 0
        self.applied = 0  # records' items applied by this drain (jobs, messages, ...)
        self.written = 0  # positions written by the current drain call
        self.listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], None] = _nothing

    @property
    def state(self) -> Any:
        """The worker's outbox state (created, in a transition, on first use)."""
        if self._state is None:
            with store.transition():
                self._state = OutboxState(self.prefix)
        return self._state

    # ------------------------------------------------------------ wake-ups
    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from the running event loop) when a producer appends."""
        self._wake = wake
        try:
            self.listener = Listener(self.store_file)
        except OSError as exc:
            log.warning("outbox wake-ups unavailable (%s): looking once a second", exc)
            return
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.listener.fileno(), self._woken)

    def _woken(self) -> None:
        if self.listener is not None:
            self.listener.drain()
        self.dirty = True
        self._wake()

    def close(self) -> None:
        if self.listener is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for segment in self.segments.values():
            segment.close()
        self.segments.clear()

    # ------------------------------------------------------------ draining
    def due(self) -> bool:
        if self.paused:
            return False
        return self.dirty or time.monotonic() - self.last_look >= LOOK_EVERY_S

    def _resume(self) -> None:
        self.paused = False
        self.dirty = True
        self._wake()

    def drain(self, limit: int) -> int:
        """Apply up to about `limit` items (whole records); returns the writes made (items
        applied, positions moved), which the loop's group commit must take."""
        if not self.due():
            return 0
        looking = time.monotonic() - self.last_look >= LOOK_EVERY_S
        self.dirty = False
        if looking:
            self.last_look = time.monotonic()
        self._discover()
        if self.finished:
            reclaim.reclaim(self)
        if not self.segments:
            return 0
        applier = Applier(self.state, self.prefix)
        self.written = 0
        more = False
        with store.transition():
            for group in self._groups():
                if applier.applied >= limit:
                    more = True
                    break
                self._drain_producer(group, applier, limit, looking)
            if applier.applied >= limit:
                more = True
        log_reopened(log, applier.reopened, "outbox messages")
        for uuid, jobdef in applier.created:  # the definition places it: no fetch by uuid
            signals.job_runnable(uuid, jobdef=jobdef)
        self.applied += applier.applied
        changed = applier.applied + self.written  # writes the loop's next commit must take
        if looking:
            reclaim.sweep_temporary(self.directory)
        if more:  # again once the event loop has run (steps waiting for it are not starved)
            self.dirty = True
            if self._loop is not None:
                self.paused = True
                self._loop.call_soon(self._resume)
        return changed

    def _discover(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            if name in self.segments:
                continue
            parsed = layout.parse_name(name)
            if parsed is None or self.positions.get(name) == FINISHED:
                continue
            self.segments[name] = Segment(self.directory / name, *parsed)
            self.positions.setdefault(name, 0)

    def _groups(self) -> list[list[Segment]]:
        """Segments by producer, each producer's in order; the producer taken first turns."""
        by_producer: dict[str, list[Segment]] = {}
        for segment in self.segments.values():
            if self.positions.get(segment.name) != FINISHED:
                by_producer.setdefault(segment.producer, []).append(segment)
        groups = [sorted(g, key=lambda s: s.number) for _p, g in sorted(by_producer.items())]
        if groups:
            self.turn = (self.turn + 1) % len(groups)
            groups = groups[self.turn:] + groups[:self.turn]
        return groups

    def _drain_producer(self, group: list[Segment], applier: Applier, limit: int,
                        looking: bool) -> None:
        for segment in group:
            if not self._drain_segment(segment, applier, limit, looking):
                return  # not finished: a later segment of this producer must wait

    def _drain_segment(self, segment: Segment, applier: Applier, limit: int,
                       looking: bool) -> bool:
        """Apply the segment's new records; True once it is finished."""
        name = segment.name
        start = position = self.positions[name]
        while applier.applied < limit and position != segment.sealed_at:
            before = position
            for end, item in segment.read(position):
                applier.apply(item)
                position = end
                if applier.applied >= limit:
                    break
            if position == before:
                break
        finished = position == segment.sealed_at
        if not finished and looking and applier.applied < limit:
            dead_end = self._dead_and_read(segment, applier, position)
            if dead_end is not None:
                finished, position = True, dead_end
        if finished:
            self._finish(segment)
        elif position != start:
            self.positions[name] = position
            self.state.positions[name] = position
            self.written += 1
        return finished

    def _dead_and_read(self, segment: Segment, applier: Applier, position: int) -> int | None:
        """For a segment whose producer died unsealed: apply what it completed and return
        where it ends (a frame it left cut short was never accepted); None while it lives."""
        if segment.producer_alive():
            return None
        while position != segment.sealed_at:  # nothing more will be written: read to the end
            before = position
            for end, item in segment.read(position):
                applier.apply(item)
                position = end
            if position == before:
                break
        left = segment.size() - position
        if left > 0 and position != segment.sealed_at:
            log.warning("outbox segment %s: its producer died mid-append; the %d bytes after "
                        "offset %d were never accepted and are dropped", segment.name, left,
                        position)
        return position

    def _finish(self, segment: Segment) -> None:
        self.positions[segment.name] = FINISHED
        self.state.positions[segment.name] = FINISHED
        self.finished[segment.name] = reclaim.pending_state(self.prefix)
        self.written += 1

    # ------------------------------------------------------------ for auto_terminate
    def has_pending(self) -> bool:
        """Whether anything is left to do: bytes not applied, a segment to delete, or one
        whose producer died and that is not finished yet (a live producer's is not work)."""
        self._discover()
        if self.finished:
            self.dirty = True  # the next look deletes them, once their mark is committed
            return True
        for segment in self.segments.values():
            at = self.positions.get(segment.name, 0)
            if at == FINISHED:
                continue
            if segment.size() > at or not segment.producer_alive():
                self.dirty = True
                return True
        return False


def _nothing() -> None:
    return None


def start(prefix: str, wake: Callable[[], None]) -> OutboxDrain | None:
    """The drain of `prefix`, listening for wake-ups (call from the running event loop);
    None where the prefix's files cannot be located (the outbox is then unavailable)."""
    try:
        drain = OutboxDrain(prefix)
    except layout.OutboxUnavailableError as exc:
        log.warning("no outbox for prefix %r: %s", prefix, exc)
        return None
    drain.listen(wake)
    return drain


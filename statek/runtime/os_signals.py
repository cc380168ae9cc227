"""SIGINT/SIGTERM for a worker: first press stops gracefully, a second aborts in-flight steps.

A worker runs inside someone's process. `start_statek` owns its process, so it takes both
signals, from before its event loop exists (a signal during start-up is remembered and acted
on once the loop runs) until it returns. `start_statek_async` runs in an application's loop:
it takes a signal only if the application left it at its default, so an application that
handles SIGINT/SIGTERM itself keeps doing so (and stops the worker by cancelling it). Either
way, every handler the process had before is put back when the worker returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("statek.runner")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = (signal.SIG_DFL, signal.default_int_handler, None)


@contextlib.contextmanager
def stop_event() -> Iterator[asyncio.Event]:
    """An event SIGINT/SIGTERM set while the block runs, for a process that runs until either
    arrives (`statek serve`, the demo's dashboard); the loop's handlers go when it ends.
    Where the loop cannot take signals (not the main thread), nothing sets it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    taken = []
    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            taken.append(sig)
    try:
        yield stop
    finally:
        for sig in taken:
            loop.remove_signal_handler(sig)


class WorkerSignals:
    """Counts presses of SIGINT/SIGTERM and tells `on_press(count)` about each."""

    def __init__(self) -> None:
        self.presses = 0
        self._on_press: Callable[[int], None] | None = None
        self._early: dict[signal.Signals, Any] = {}  # signal -> handler before start-up

    # ------------------------------------------------------------------ before the loop
    @contextlib.contextmanager
    def during_startup(self) -> Iterator[None]:
        """Remember signals that arrive before the loop can handle them; restore after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in SIGNALS:
            self._early[sig] = signal.signal(sig, self._remember)
        try:
            yield
        finally:
            for sig, previous in self._early.items():
                signal.signal(sig, previous)
            self._early.clear()

    def _remember(self, signum: int, frame: Any) -> None:
        self.presses += 1

    # ------------------------------------------------------------------ in the loop
    @contextlib.contextmanager
    def installed(self, on_press: Callable[[int], None], *, take_all: bool) -> Iterator[None]:
        """Handle the signals in the running loop (all of them with `take_all`, else only
        those still at their default); signals remembered during start-up are acted on now.
        """
        loop = asyncio.get_running_loop()
        self._on_press = on_press
        taken: dict[signal.Signals, Any] = {}
        for sig in SIGNALS:
            current = signal.getsignal(sig)
            if not take_all and self._early.get(sig, current) not in _DEFAULTS:
                log.info("%s is handled by the application; statek leaves it alone", sig.name)
                continue
            try:
                loop.add_signal_handler(sig, self._pressed)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a loop without signal support
            taken[sig] = current
        for count in range(1, self.presses + 1):  # pressed during start-up: act before
            on_press(count)                        # the worker's loop runs its first step
        try:
            yield
        finally:
            for sig, previous in taken.items():
                loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)
            self._on_press = None

    def _pressed(self) -> None:
        self.presses += 1
        if self._on_press is not None:
            self._on_press(self.presses)

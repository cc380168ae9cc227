"""Long job code takes turns with the event loop.

asyncio runs every callback that is ready when a loop turn begins before it looks at signals,
timers or sockets again. Steps queued together (every step on Python 3.11, which cannot start
a Task eagerly; the steps a launch could not finish inline on 3.12+) therefore run their job
code back to back: a hundred steps of CPU-heavy code, each allowed `step_code_budget` seconds,
kept SIGINT/SIGTERM, the HTTP API and model replies waiting for minutes (found by a new-user
trial). So before a step runs code it asks `turn_spent()`: once the code run in this turn
has taken `TURN_S`, the step awaits `next_turn()` and runs on a later turn, after the loop
has polled.

Cheap steps never yield: a turn of a thousand 60 µs steps stays under `TURN_S`. A signal
then waits for at most about two steps' code (`step_code_budget` bounds each). Once the
worker stops (`hold`), a step waiting for a turn does not start its code at all: it is
cancelled where it waits, before its code, as an abort would, and the next worker runs it.
"""

from __future__ import annotations

import asyncio
import time

#: Code run back to back before a step gives the event loop a turn.
TURN_S = 0.1

_turn_began = 0.0  # when this turn's code began: reset by the loop and after each yield
_reset_on: asyncio.AbstractEventLoop | None = None  # the loop a `new_turn` is queued on
_holding = False  # the worker is stopping: no step starts its code


def hold(stopping: bool) -> None:
    """Set when the worker stops (steps that have not started their code stay for the next
    worker), cleared when a worker loop starts."""
    global _holding
    _holding = stopping


def new_turn() -> None:
    """The event loop has polled: code may run for another `TURN_S`."""
    global _turn_began, _reset_on
    _turn_began = time.perf_counter()
    _reset_on = None


def turn_spent() -> bool:
    """Whether this turn's code has taken `TURN_S`, or the worker stops (then `await
    next_turn(...)` before running code)."""
    return _holding or time.perf_counter() - _turn_began >= TURN_S


async def next_turn(code_started: bool = False) -> None:
    """Yield until a turn with code time left (one step's code runs per turn while the loop
    is behind). While the worker stops, a step whose code has not started ends here."""
    global _reset_on
    while True:
        task = asyncio.current_task() if _holding and not code_started else None
        if task is not None:  # cancelled before its code, as an abort's cancel would
            task.cancel()
        elif time.perf_counter() - _turn_began < TURN_S:
            return
        else:
            loop = asyncio.get_running_loop()
            if _reset_on is not loop:  # queued ahead of the steps waiting: first next turn
                _reset_on = loop  # (a loop that ended with one queued does not count)
                loop.call_soon(new_turn)
        await asyncio.sleep(0)  # raises CancelledError once cancelled

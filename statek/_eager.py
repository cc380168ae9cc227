"""Start a coroutine as its own asyncio Task, synchronously up to its first wait where the
interpreter allows it.

A step must enter and leave its scopes in one Task: `asyncio.timeout`, httpx/anyio cancel
scopes and the `async with` blocks of async tools bind themselves to `current_task()` when
they are entered. A coroutine driven by hand from the loop's own task and finished in another
tears every such scope in two ("Attempted to exit cancel scope in a different task"), and a
timeout entered that way would cancel the worker loop instead of the step. So a step is a
Task from its first instruction.

On Python 3.12+ the Task starts eagerly (`eager_start=True`): it runs at once, as the current
task, until it first waits; a step that never waits (a warmup that exits, an offline model)
is finished when `start_task` returns and is never scheduled. Python 3.11 has no eager start:
there the Task starts on the loop's next turn, as any Task does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

#: True when Tasks can start eagerly (Python 3.12+).
EAGER = sys.version_info >= (3, 12)
_EAGER_START: dict[str, Any] = {"eager_start": True}  # a keyword 3.11's typeshed lacks


def start_task(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    """Run `coro` as a Task; None when it already finished (eager start only).

    An exception it raised before its first wait propagates to the caller, as a call would."""
    loop = asyncio.get_running_loop()
    if not EAGER:
        return loop.create_task(coro)
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **_EAGER_START)
    if task.done():
        task.result()  # re-raises what the coroutine raised; a finished step returns None
        return None
    return task

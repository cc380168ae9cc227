"""Tools the end-to-end jobs call, registered on import (the worker process imports this too).

The async ones do what real tools do and what a step split across two tasks breaks: an httpx
request (anyio cancel scopes inside), `asyncio.timeout`, an `async with` that must leave in
the task it entered. They reach the tool server at `$E2E_TOOL_SERVER_URL`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from types import TracebackType
from typing import Any

import httpx

import statek

URL_VARIABLE = "E2E_TOOL_SERVER_URL"
#: tasks waiting for fleet agents, by agent key (filled by the fleet test, drained by warmups)
TASK_QUEUES: dict[str, deque[str]] = {}


class Beats:
    """A count one side advances and the other awaits, in one event loop, without polling:
    how an application's own task and a job's tool see each other run."""

    def __init__(self) -> None:
        self.count = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    def beat(self) -> None:
        self.count += 1
        still = []
        for target, waiter in self._waiting:
            if self.count < target:
                still.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiting = still

    async def reach(self, target: int) -> None:
        if self.count >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append((target, waiter))
        await waiter


#: beaten by the application's ticker task (test_app_loop); awaited by e2e_app_ticks
APP_TICKS = Beats()
#: beaten by e2e_note; the application awaits it to know its jobs got that far
NOTES: list[str] = []
NOTED = Beats()
#: beaten by the application to let e2e_note_and_hold return
RELEASE = Beats()


def reset_app_state() -> None:
    global APP_TICKS, NOTED, RELEASE
    APP_TICKS, NOTED, RELEASE = Beats(), Beats(), Beats()
    NOTES.clear()


def _base_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise RuntimeError(f"{URL_VARIABLE} is not set: the tool server is not running")
    return url


class TaskBound:
    """An async context manager that insists on leaving in the task it entered, as anyio's
    cancel scopes (inside httpx) and `asyncio.timeout` do."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.entered_in: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> TaskBound:
        self.entered_in = asyncio.current_task()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        left_in = asyncio.current_task()
        if left_in is not self.entered_in:
            raise RuntimeError(f"{self.label}: entered in task {self.entered_in!r}, "
                               f"left in task {left_in!r}")


@statek.tool
async def e2e_echo(text: str) -> str:
    """Echo text through the tool server (httpx inside asyncio.timeout)."""
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=_base_url()) as client:
        response = await client.get("/echo", params={"text": text})
        response.raise_for_status()
        return str(response.json()["echo"])


@statek.tool
async def e2e_guarded(label: str) -> str:
    """Call the tool server inside a context manager that checks it stays in one task."""
    async with TaskBound(label), httpx.AsyncClient(base_url=_base_url()) as client:
        response = await client.get("/echo", params={"text": label})
        response.raise_for_status()
        return f"{label}:same-task"


@statek.tool
async def e2e_slow(seconds: float) -> str:
    """Wait for a reply that comes after `seconds` (longer than the step may take)."""
    async with httpx.AsyncClient(base_url=_base_url(), timeout=seconds + 30) as client:
        response = await client.get("/slow", params={"seconds": str(seconds)})
        return str(response.json()["slow"])


@statek.tool
async def e2e_loop_kind() -> str:
    """The module of the running event loop's class ("asyncio" or "uvloop")."""
    await asyncio.sleep(0)
    if asyncio.current_task() is None:
        raise RuntimeError("async tool ran outside any task")
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@statek.tool
def e2e_divide(a: float, b: float) -> float:
    """Divide (raises ZeroDivisionError for b == 0)."""
    return a / b


@statek.tool
def e2e_reject(reason: str) -> None:
    """Always refuses."""
    raise ValueError(f"tool refused {reason}")


@statek.tool
def e2e_block(seconds: float) -> str:
    """Blocks the worker's thread (a sync tool doing slow work, e.g. a blocking client)."""
    time.sleep(seconds)
    return "unblocked"


@statek.tool
def e2e_take_task(queue: str) -> str:
    """Take the next task waiting for a fleet agent."""
    return TASK_QUEUES[queue].popleft()


@statek.tool
async def e2e_app_ticks(more: int) -> int:
    """Wait until the application's own task has ticked `more` more times."""
    ticks = APP_TICKS
    start = ticks.count
    async with asyncio.timeout(30):
        await ticks.reach(start + more)
    return ticks.count - start


@statek.tool
def e2e_note(text: str) -> str:
    """Tell the application a job got here."""
    NOTES.append(text)
    NOTED.beat()
    return text


@statek.tool
async def e2e_note_and_hold(text: str) -> str:
    """Tell the application a job got here, then wait until it lets the job go on."""
    NOTES.append(text)
    NOTED.beat()
    release = RELEASE
    async with asyncio.timeout(60):
        await release.reach(1)
    return text

"""Control-flow exceptions raised through job code (see `ControlSignal`: `except Exception` in
job code does not catch them, and one swallowed by a bare `except:` still takes effect)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from statek.models.future import ControlSignal


class JobExit(ControlSignal):
    """`exit(status)` was called: the job is done."""

    def __init__(self, status: Any = None) -> None:
        super().__init__(status)
        self.status = status


class AwaitTool(ControlSignal):
    """Job code called an async tool: the step awaits it, then re-runs the statement."""

    def __init__(self, site: str, awaitable: Awaitable[Any]) -> None:
        super().__init__(site)
        self.site = site
        self.awaitable = awaitable

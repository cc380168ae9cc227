"""Control-flow exceptions raised through job code (BaseException: `except Exception` in job
code cannot swallow them)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any


class JobExit(BaseException):  # noqa: N818 - control flow, not an error
    """`exit(status)` was called: the job is done."""

    def __init__(self, status: Any = None) -> None:
        super().__init__(status)
        self.status = status


class AwaitTool(BaseException):  # noqa: N818 - control flow, not an error
    """Job code called an async tool: the step awaits it, then re-runs the statement."""

    def __init__(self, site: str, awaitable: Awaitable[Any]) -> None:
        super().__init__(site)
        self.site = site
        self.awaitable = awaitable

"""A step about to wait on the outside world has its writes committed within the window.

The loop counts a step's writes as pending when the step ends. A step that writes and then
waits (the model's reply, an async tool: up to `step_timeout`) kept those writes
uncommitted all that time: a crash re-ran the turn's code, its tool calls included, although
the README promises that a crash loses at most the last ~50 ms of steps (found by a new
user's trial, with one job waiting 30 s on a reply). So before such a wait a step calls
`about_to_wait()`, and the running loops (`statek.runtime.loop` sets `on_wait`) commit
within their commit window.
"""

from __future__ import annotations

from collections.abc import Callable

#: Set by `statek.runtime.loop` when imported; with no loop running it does nothing
#: (`run_job_step` callers commit themselves).
on_wait: Callable[[], None] | None = None


def about_to_wait() -> None:
    """The current step has written and now awaits something outside the worker."""
    hook = on_wait
    if hook is not None:
        hook()

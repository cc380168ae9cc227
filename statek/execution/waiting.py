"""A step about to wait on the outside world has its writes committed within the window.

The loop counts a step's writes as pending when the step ends. A step that writes and then
waits (the model's reply, an async tool: up to `step_timeout`) kept those writes
uncommitted all that time: a crash re-ran the turn's code, its tool calls included, although
the README promises that a crash loses at most the last ~50 ms of steps (found by a new
user's trial, with one job waiting 30 s on a reply). So before such a wait a step calls
`about_to_wait()`, and the running loop (`JobsLoop`, which sets `on_wait`) commits within
its commit window.
"""

from __future__ import annotations

from collections.abc import Callable

#: Set by the running worker loop; None outside one (`run_job_step` callers commit).
on_wait: Callable[[], None] | None = None


def about_to_wait() -> None:
    """The current step has written and now awaits something outside the worker."""
    hook = on_wait
    if hook is not None:
        hook()

"""In-process readiness signals from the model to whichever scheduler is listening.

The model (jobs, queues, futures) never imports the runner. When something makes a job
runnable it calls one of these functions; a running scheduler subscribes and turns the call
into an O(1) update of its in-memory ready set. With no listener they cost one attribute read.

Besides that one listener, observers (`observe`) hear `job_changed(uuid, job)` whenever a job
may have changed status or console: when it becomes runnable, finishes, or a step of it ends
(the scheduler's `step_ended`). The worker's HTTP API uses it for its event stream; with no
observer it costs one list check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from statek import worker_state

if TYPE_CHECKING:
    from statek.models.job import Job
    from statek.models.jobdef import JobDef

#: callback(job_uuid, job or None): the job may have a new status or console lines.
Observer = Callable[[str, Any], None]


class ReadinessListener(Protocol):
    def job_runnable(self, job_uuid: str, job: Job | None = None,
                     jobdef: JobDef | None = None) -> None:
        """The job has work to do now (new, resumed, messaged). `job` (or its `jobdef`)
        when the caller holds it: the listener then needs no `db0.fetch` to place it."""

    def job_finished(self, job_uuid: str) -> None:
        """The job reached DONE: whoever waits on it may resume."""

    def job_messaged(self, job_uuid: str) -> None:
        """A message was recorded for the job."""

    def timer_set(self, job_uuid: str, deadline: float) -> None:
        """The job waits until `deadline` (wall-clock seconds)."""

    def queue_pushed(self) -> None:
        """A message or event was queued (dbzero allows one writer per prefix, so every
        push into a queue this worker drains happens in this process)."""


_listener: ReadinessListener | None = None


def subscribe(listener: ReadinessListener | None) -> ReadinessListener | None:
    """Install a listener (None removes it); returns the previous one."""
    global _listener
    previous, _listener = _listener, listener
    return previous


def unsubscribe(listener: ReadinessListener) -> None:
    """Remove `listener` if it is the one installed (another one stays)."""
    global _listener
    if _listener is listener:
        _listener = None


def job_runnable(job_uuid: str, job: Job | None = None, jobdef: JobDef | None = None) -> None:
    """`job` is the Job when the caller holds it, else `jobdef` its JobDef when known (a
    batch of new jobs of one definition): either spares the scheduler fetching the job by
    uuid to find its lane."""
    if _listener is not None:
        _listener.job_runnable(job_uuid, job, jobdef)
    if observers:
        job_changed(job_uuid)


def job_finished(job_uuid: str) -> None:
    if _listener is not None:
        _listener.job_finished(job_uuid)
    worker_state.drop_job(job_uuid)  # every per-job cache, on every path ending a job
    if observers:
        job_changed(job_uuid)


def job_messaged(job_uuid: str) -> None:
    if _listener is not None:
        _listener.job_messaged(job_uuid)


def timer_set(job_uuid: str, deadline: float) -> None:
    if _listener is not None:
        _listener.timer_set(job_uuid, deadline)


def queue_pushed() -> None:
    if _listener is not None:
        _listener.queue_pushed()


observers: list[Observer] = []


def observe(callback: Observer) -> Callable[[], None]:
    """Add an observer of job changes; returns the function that removes it."""
    observers.append(callback)

    def remove() -> None:
        if callback in observers:
            observers.remove(callback)

    return remove


def job_changed(job_uuid: str, job: Any = None) -> None:
    """Tell the observers a job may have changed (`job` when the caller holds it). Observers
    only read: they run inside the caller's transition."""
    for callback in observers:
        callback(job_uuid, job)

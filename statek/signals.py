"""In-process readiness signals from the model to whichever scheduler is listening.

The model (jobs, queues, futures) never imports the runner. When something makes a job
runnable it calls one of these functions; a running scheduler subscribes and turns the call
into an O(1) update of its in-memory ready set. With no listener they cost one attribute read.
"""

from __future__ import annotations

from typing import Protocol


class ReadinessListener(Protocol):
    def job_runnable(self, job_uuid: str) -> None:
        """The job has work to do now (new, resumed, messaged)."""

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


def job_runnable(job_uuid: str) -> None:
    if _listener is not None:
        _listener.job_runnable(job_uuid)


def job_finished(job_uuid: str) -> None:
    if _listener is not None:
        _listener.job_finished(job_uuid)


def job_messaged(job_uuid: str) -> None:
    if _listener is not None:
        _listener.job_messaged(job_uuid)


def timer_set(job_uuid: str, deadline: float) -> None:
    if _listener is not None:
        _listener.timer_set(job_uuid, deadline)


def queue_pushed() -> None:
    if _listener is not None:
        _listener.queue_pushed()

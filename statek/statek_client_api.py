"""StatekClientAPI: how application code talks to statek (submit, message, cancel).

Every call is durable when it returns (it commits), so a worker in another process, or this
one after a crash, sees the work. Use the batch call for throughput: it commits in chunks.
In a process that opened the prefix in mode "feed" (a worker holds it), the writes go through
the prefix's outbox instead (statek.outbox): submits return ids before the worker applies them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dbzero as db0

from statek.errors import JobNotFoundError
from statek.models.agent import Agent
from statek.models.by_uuid import fetch_or_none
from statek.models.job import Job
from statek.models.push_queue import StatekPushQueue, open_queue
from statek.models.storable import check_value
from statek.models.submit import submit_job_ids, submit_jobs
from statek.outbox import OutboxClient, PendingJob
from statek.outbox.state import is_outbox_id, lookup
from statek.runtime.queues import check_event_target
from statek.store import current_prefix, feeding, feeding_error, require_prefix


class StatekClientAPI:
    """The external job-submission API (jobs and queues live in `prefix`, default current)."""

    def __init__(self, prefix: str | None = None, *, commit: bool = True) -> None:
        require_prefix()
        self.prefix = prefix or current_prefix()
        self.commit = commit
        self.outbox = OutboxClient(self.prefix) if feeding(self.prefix) else None

    def _commit(self) -> None:
        if self.commit:
            db0.commit()

    @property
    def queue(self) -> StatekPushQueue:
        return open_queue(self.prefix)

    def submit_new_job(self, agent: Agent | str, shared_vars: Mapping[str, Any] | None = None,
                       locale: str | None = None, **job_params: Any) -> Job | PendingJob:
        """Create one READY job of `agent` whose locals start as `shared_vars`."""
        if self.outbox is not None:
            (job_id,) = self.outbox.submit(agent, [shared_vars], locale, job_params)
            return PendingJob(self.outbox, job_id)
        (job,) = submit_jobs(_agent_of(agent), [shared_vars], locale, job_params, commit=False)
        self._commit()
        return job

    def submit_new_jobs_batch(self, agent: Agent | str,
                              shared_vars_batch: Iterable[Mapping[str, Any] | None],
                              locale: str | None = None,
                              **job_params: Any) -> list[Job] | list[PendingJob]:
        """Create one job per mapping; all are validated before the first is created."""
        if self.outbox is not None:
            outbox = self.outbox
            ids = outbox.submit(agent, shared_vars_batch, locale, job_params)
            return [PendingJob(outbox, job_id) for job_id in ids]
        return submit_jobs(_agent_of(agent), shared_vars_batch, locale, job_params,
                           commit=self.commit)

    def submit_new_job_ids(self, agent: Agent | str,
                           shared_vars_batch: Iterable[Mapping[str, Any] | None],
                           locale: str | None = None, **job_params: Any) -> list[str]:
        """As `submit_new_jobs_batch`, returning uuids: for batches of 10k+ jobs, where holding
        that many Job objects would slow every later dbzero write in the process."""
        if self.outbox is not None:
            return self.outbox.submit(agent, shared_vars_batch, locale, job_params)
        return submit_job_ids(_agent_of(agent), shared_vars_batch, locale, job_params,
                              commit=self.commit)

    def get_job(self, uuid: str) -> Job:
        """The job with this uuid (or outbox id); JobNotFoundError when there is none
        (JobPendingError, a kind of it, for an outbox id the worker has not applied yet)."""
        if self.outbox is not None:
            return self.outbox.get_job(uuid)
        if is_outbox_id(uuid):
            found = lookup(self.prefix, uuid)
            if isinstance(found, Job):
                return found
        obj = fetch_or_none(uuid)
        if obj is None:
            raise JobNotFoundError(f"no job with uuid {uuid!r}")
        if not isinstance(obj, Job):
            raise JobNotFoundError(f"{uuid!r} is a {type(obj).__name__}, not a Job")
        return obj

    def push_message(self, job: Job | PendingJob | str, message: Any) -> int:
        """Queue a message for a job; the worker delivers it. Returns its sequence number in
        the queue (in a process feeding a running worker: its position in this process's
        outbox segment, as the queue numbers it only when the worker applies it).

        Delivery follows `Job.push_user_message`: a suspended job waiting for a message wakes,
        a DONE job re-opens with its earlier result kept in `job.previous_results`. A
        cancelled job takes no messages: IllegalTransitionError here, and a message queued
        before the cancel becomes a dead letter of the queue when the worker meets it."""
        if self.outbox is not None:
            return self.outbox.push_message(job, message)
        target = self._target(job)
        target.check_takes_messages()
        seq = self.queue.push_message(target, message)
        self._commit()
        return seq

    def push_event(self, agent: Agent | str, event: Any) -> int:
        """Queue an event for a supervised agent; the worker turns it into a job. An agent
        that cannot take events (not a SupervisedAgent, or a warmup that does not read
        exactly one outside local) is refused here (ConfigurationError), rather than the
        event becoming a dead letter in the worker."""
        check_value(event, "event")  # the value's own error first, as for messages
        target = _agent_of(agent)
        check_event_target(target)
        if self.outbox is not None:
            return self.outbox.push_event(agent, event)
        # the agent found, not the role given: the worker reads the queue's target as a
        # uuid, and an event queued by role became a dead letter ("agent does not exist")
        seq = self.queue.push_event(target, event)
        self._commit()
        return seq

    def cancel_job(self, job: Job | PendingJob | str) -> bool:
        """End a job now; False if it had already finished. Through the outbox: True once
        the cancel is queued, False when the job was DONE as this process last read it."""
        if self.outbox is not None:
            return self.outbox.cancel(job)
        target = self._target(job)
        cancelled = target.cancel()
        self._commit()
        return cancelled

    def _target(self, job: Job | PendingJob | str) -> Job:
        if isinstance(job, PendingJob):
            return self.get_job(job.uuid)
        return self.get_job(job) if isinstance(job, str) else job

    # ------------------------------------------------------------ budgets
    def set_budget(self, job: Job | str, *, tokens: int | None = None, cost: float | None = None,
                   steps: int | None = None, seconds: float | None = None,
                   policy: str | None = None) -> dict[str, Any]:
        """Give a job a budget of its own (absolute limits; 0 is no limit; None leaves one as
        it is) and a policy ("suspend" or "fail"); jobs it delegates afterwards run under it.
        Held jobs now within budget resume. Returns the budget (limits, spent, exhausted)."""
        from statek.admission.budgets import set_budget

        if self.outbox is not None:
            raise feeding_error(self.prefix, "set_budget")
        target = self.get_job(job) if isinstance(job, str) else job
        limits = {"tokens": tokens, "cost": cost, "steps": steps, "seconds": seconds,
                  "policy": policy}
        data = set_budget(target, {k: v for k, v in limits.items() if v is not None})
        self._commit()
        return data

    def raise_budget(self, job: Job | str, *, tokens: int = 0, cost: float = 0.0,
                     steps: int = 0, seconds: float = 0.0) -> dict[str, Any]:
        """Add to the limits of the budget a job runs under (its own, else its tree's) and
        resume the jobs it held that are now within every budget. ValueError for a job with
        no budget or a kind without a limit."""
        from statek.admission.budgets import raise_budget

        if self.outbox is not None:
            raise feeding_error(self.prefix, "raise_budget")
        target = self.get_job(job) if isinstance(job, str) else job
        data = raise_budget(target, {"tokens": tokens, "cost": cost, "steps": steps,
                                     "seconds": seconds})
        self._commit()
        return data

    def get_budget(self, job: Job | str) -> dict[str, Any] | None:
        """The budget a job runs under (limits, spent, policy; `held` while a budget that
        ran out holds it: a BudgetExhausted as data), or None."""
        from statek.admission.budgets import budget_info

        return budget_info(self.get_job(job) if isinstance(job, str) else job)


def _agent_of(agent: Agent | str) -> Agent:
    """An agent given as itself, by uuid or by role: the same three forms a feeding process
    may use (a role several agents share is refused, naming them)."""
    if isinstance(agent, str):
        from statek.outbox.client import agent_uuid

        found: Agent = db0.fetch(agent_uuid(agent, remember=False))
        return found
    return agent

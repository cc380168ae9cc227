"""The worker loop behind `run_jobs_loop`: event-driven, bounded, group-committing.

Each iteration: wake suspended jobs whose futures are ready, drain push queues, create jobs
for queued agent events and through `start_jobs_func`, launch ready jobs into free slots, and
commit if the group-commit window closed. Then it sleeps until something happens (a step
ended, a job became runnable, something was queued) or the next deadline (a timer, the
commit window): never on a fixed interval.

At most `max_concurrency` step tasks exist at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import dbzero as db0

from statek import store
from statek._eager import start_task
from statek.execution import turns, waiting
from statek.execution.step import execute_step
from statek.models.job import Job
from statek.models.status import JobStatus
from statek.observability import hooks
from statek.observability.logs import configure_logging
from statek.outbox import drain as outbox
from statek.providers.registry import aclose_all
from statek.runtime.collector import tuned_collector
from statek.runtime.quarantine import settle_crash
from statek.runtime.queues import (
    check_queue_prefixes,
    process_agent_events,
    process_push_notifications,
    queues_of,
)
from statek.runtime.scheduler import Scheduler, current_scheduler
from statek.runtime.stats import LoopStats
from statek.runtime.watchdog import Guards, heartbeat_path

log = logging.getLogger("statek.loop")

StartJobsFunc = Callable[[int], Any]
#: Upper bound on an idle sleep: a cheap safety net, not a polling interval.
IDLE_CHECK_S = 1.0
QUEUE_STEP = 500
QUEUE_MAX_PER_ITERATION = 5000
#: Longest stretch an iteration spends starting steps before it yields to the event loop
#: (timers, I/O, signal handlers, other steps' model replies).
ITERATION_SLICE_S = 0.004
LAUNCH_CHUNK = 8  # steps started between two looks at the clock
#: Most steps of one job run in a row in its slot (`Scheduler.keeps_slot`) before it queues
#: behind the jobs of its agent waiting for a slot.
STEPS_PER_SLOT = 8
#: Most of the loop's time commits may take. Besides its writes a commit costs a part that
#: grows with the memo objects Python holds (docs/storage.md S3; each step waiting on a model
#: holds its Job): with 5,000 steps waiting a 50 ms window spent ~6% of the loop on commits.
#: The window stretches to keep them near this share (see `commit_window`).
COMMIT_SHARE = 0.05


def commit_window(last_commit_s: float, shortest: float, longest: float) -> float:
    """The group-commit window after a commit that took `last_commit_s` of CPU: long enough
    that committing takes at most COMMIT_SHARE of the loop, within [shortest, max(shortest,
    longest)]. A cheap commit keeps the configured (shortest) window, and with it the
    durability window a crash can lose."""
    return max(shortest, min(longest, last_commit_s / COMMIT_SHARE))


class JobsLoop:
    def __init__(self, max_concurrency: int = 100, provider: str | None = None, *,
                 queue_prefixes: Sequence[str | int] = (),
                 start_jobs_func: StartJobsFunc | None = None,
                 auto_terminate: bool = False, job_prefix: str | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, not {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.provider = provider
        self.queue_prefixes = check_queue_prefixes(queue_prefixes)
        self.start_jobs_func = start_jobs_func
        self.auto_terminate = auto_terminate
        self.job_prefix = job_prefix
        cfg = store.settings()
        self.commit_interval = cfg.commit_interval
        self.commit_interval_max = cfg.commit_interval_max
        self.commit_window = cfg.commit_interval  # stretched by costly commits, see _commit
        self.commit_max_pending = cfg.commit_max_pending
        self.grace = cfg.shutdown_grace
        self.gc_young_threshold = cfg.gc_young_threshold
        self.sched: Scheduler = current_scheduler()
        self.stats = LoopStats()
        self.tasks: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()
        self.stopping = False
        self.pending_commits = 0
        self.last_commit = time.monotonic()
        self.running = 0
        self.ended_inline = 0  # steps of this iteration that finished without waiting
        self.events_waiting = False  # agent events left queued for want of a free slot
        self.iterated_at = time.perf_counter()  # when the last iteration began (/readyz)
        self.outbox: outbox.OutboxDrain | None = None  # other processes' writes (statek.outbox)

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Stop launching steps; in-flight steps get `shutdown_grace` seconds (those waiting
        for a turn to start their code end there: statek.execution.turns)."""
        self.stopping = True
        turns.hold(True)
        self.wakeup.set()

    def abort(self) -> None:
        """Stop now: cancel in-flight steps (committed state stays consistent)."""
        self.stopping = True
        turns.hold(True)
        for task in list(self.tasks):
            task.cancel()
        self.wakeup.set()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> LoopStats:
        _active.add(self)
        _last_stats[:] = [self.stats]
        turns.hold(False)
        if _stop_before_start[0]:
            _stop_before_start[0] = False
            self.request_stop()
        try:
            configure_logging(store.settings())
            probe = hooks.loop_started(store.settings())
            guards = self._start_guards()
        except BaseException:
            _active.discard(self)
            raise
        self.sched.notify = self.wakeup.set
        try:
            self.outbox = outbox.start(self.job_prefix or store.current_prefix(),
                                       self.wakeup.set)
            self.sched.rebuild(dict.fromkeys([None, *self._job_prefixes()]))
            with tuned_collector(self.gc_young_threshold):
                await self._iterate()
        except asyncio.CancelledError:
            self.request_stop()
            await asyncio.shield(self._drain())
            raise
        finally:
            _active.discard(self)
            turns.hold(False)  # steps run outside a loop (run_job_step) start their code
            self.sched.detach()
            guards.close()
            if self.outbox is not None:
                self.outbox.close()
            if probe is not None:
                probe.close()
            self._commit()
            self.stats.in_flight = len(self.tasks)
            self.stats.ready = len(self.sched.ready)
            self.stats.suspended = len(db0.find(Job, JobStatus.SUSPENDED))
            # HTTP sessions belong to this event loop: close them while it still runs
            await asyncio.shield(aclose_all())
        return self.stats

    def _start_guards(self) -> Guards:
        """The heartbeat (after settling a crash it records), the budget thread and the
        hard-limit process (see statek.runtime.watchdog)."""
        cfg = store.settings()
        guards = Guards()
        try:
            prefix = db0.get_current_prefix()
            if self.job_prefix:
                prefix = db0.get_prefix_stats(self.job_prefix)
                name, number = prefix["name"], prefix["uuid"]
            else:
                name, number = prefix.name, prefix.uuid
            beat = guards.start_heartbeat(heartbeat_path(name, number))
            if beat is not None:
                found = beat.previous()
                if found is not None:
                    settle_crash(found[0], found[1], cfg.max_job_crashes, cfg.step_kill_after)
                    beat.unbeat()
                if cfg.step_kill_after > 0:
                    guards.start_hard_limit(cfg.step_kill_after)
            if cfg.step_code_budget > 0:
                guards.start_budget()
        except BaseException:
            guards.close()
            raise
        return guards

    def _job_prefixes(self) -> list[str]:
        return [self.job_prefix] if self.job_prefix else []

    async def _iterate(self) -> None:
        stats = self.stats
        while True:
            began = self.iterated_at = time.perf_counter()
            turns.new_turn()  # the event loop has polled since the steps' code last ran
            self.wakeup.clear()
            started = 0
            if not self.stopping:
                self.sched.unsuspend()
                self._drain_queues()
                self._drain_outbox()
                started = self._start_jobs()
                self._launch()
            self._maybe_commit()
            stats.iterations += 1
            stats.ready = len(self.sched.ready)
            stats.in_flight = len(self.tasks)
            stats.iteration_time.append(spent := time.perf_counter() - began)
            if hooks.ON:
                hooks.iteration_done(spent)
            if self.stopping:
                await self._drain()
                return
            if self.auto_terminate and not started and self._idle() and not self._start_jobs():
                stats.stranded = len(db0.find(Job, JobStatus.SUSPENDED))
                if stats.stranded:
                    log.warning("auto_terminate: %d job(s) remain suspended on futures nothing "
                                "in this worker can resolve", stats.stranded)
                return
            await self._sleep()

    async def _sleep(self) -> None:
        if self.wakeup.is_set():
            return
        if self.ended_inline or (len(self.sched.ready)
                                 and len(self.tasks) < self.max_concurrency):
            await asyncio.sleep(0)  # steps that ran inline freed their slots: go on
            return
        timeout = IDLE_CHECK_S
        deadline = self.sched.timers.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.time()))
        if self.pending_commits:
            timeout = min(timeout, max(0.0, self.last_commit + self.commit_window
                                       - time.monotonic()))
        if timeout <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wakeup.wait()

    def _idle(self) -> bool:
        sched = self.sched
        if (self.tasks or len(sched.ready) or sched.pending_wakes or sched.rechecks
                or len(sched.timers)):
            return False
        if self.outbox is not None and self.outbox.has_pending():
            return False
        return all(len(q) == 0 for q in queues_of(self.queue_prefixes))

    # ------------------------------------------------------------------ work
    def free_slots(self) -> int:
        """Slots not taken by a running step or a job already waiting for one."""
        return max(0, self.max_concurrency - len(self.tasks) - len(self.sched.ready))

    def _drain_outbox(self) -> None:
        """Apply what other processes appended to the outbox (woken by them, see
        statek.outbox.wake); committed with the loop's group commit. Not while a full
        concurrency of jobs waits to run: the files hold the backlog, not memory."""
        room = self.max_concurrency - len(self.sched.ready)
        if self.outbox is not None and room > 0 and self.outbox.due():
            self.pending_commits += self.outbox.drain(min(QUEUE_MAX_PER_ITERATION,
                                                          max(QUEUE_STEP, room)))

    def _drain_queues(self) -> None:
        if not self.sched.queue_dirty and not (self.events_waiting and self.free_slots()):
            return
        self.sched.queue_dirty = False
        delivered = process_push_notifications(
            QUEUE_STEP, QUEUE_MAX_PER_ITERATION, queue_prefixes=self.queue_prefixes,
            job_prefix=self.job_prefix)
        if delivered:
            self.stats.messages_delivered += delivered
            self.pending_commits += delivered
        if delivered >= QUEUE_MAX_PER_ITERATION:
            self.sched.queue_dirty = True  # more to do next iteration
        self.stats.queue_depth = sum(len(q) for q in queues_of(self.queue_prefixes))
        slots = self.free_slots()
        self.events_waiting = not slots  # look again when a slot frees
        if slots:
            created = process_agent_events(None, slots, queue_prefixes=self.queue_prefixes)
            if created:
                self.stats.events_started += created
                self.pending_commits += created
            if created >= slots:
                self.sched.queue_dirty = True

    def _start_jobs(self) -> int:
        if self.start_jobs_func is None:
            return 0
        slots = self.free_slots()
        if not slots:
            return 0
        try:
            created = self.start_jobs_func(slots)
        except Exception:
            log.exception("start_jobs_func raised; the loop goes on")
            return 0
        count = len(created) if isinstance(created, list | tuple) else int(created or 0)
        self.stats.jobs_started_by_func += count
        return count

    def _launch(self) -> None:
        """Start ready steps in free slots, a few at a time, until the slots or the
        iteration's time slice run out (steps that finish inline free their slots at once:
        without the slice a chain of them would keep the event loop waiting)."""
        ended_inline = 0
        until = time.perf_counter() + ITERATION_SLICE_S
        while True:
            capacity = min(LAUNCH_CHUNK, self.max_concurrency - len(self.tasks))
            batch = self.sched.take(capacity)
            if not batch:
                break
            for number in batch:
                try:
                    task = start_task(self._step(number))
                except Exception:
                    log.exception("step of job #%d failed", number)
                    ended_inline += 1
                    continue
                if task is None:  # finished without waiting (eager start)
                    ended_inline += 1
                else:
                    self.tasks.add(task)
                    task.add_done_callback(self._step_done)
            if time.perf_counter() >= until:
                break
        self.ended_inline = ended_inline
        self.stats.in_flight = len(self.tasks)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("step task failed", exc_info=task.exception())

    async def _step(self, number: int) -> None:
        """Steps of job `number` in its slot: one, or a run of them while the scheduler lets
        the job keep the slot (`Scheduler.keeps_slot`); one coroutine for the run, so the
        launch's cost is per job."""
        self.running += 1  # steps started and not ended, inline or as tasks
        stats = self.stats
        if self.running > stats.max_in_flight:
            stats.max_in_flight = self.running
        sched = self.sched
        try:
            try:
                job_uuid = sched.uuid_of(number)
                job = db0.fetch(job_uuid)
            except (KeyError, RuntimeError):
                sched.in_flight.discard(number)
                return
            for steps in range(1, STEPS_PER_SLOT + 1):
                began = time.perf_counter()
                wake_events = sched.wake_events
                try:
                    result = await (
                        hooks.observed_step(execute_step, job, job_uuid, self.provider)
                        if hooks.ON else execute_step(job, self.provider, job_uuid))
                except BaseException:  # cancelled at shutdown: the job resumes on next start
                    sched.in_flight.discard(number)
                    raise
                goes_on = (steps < STEPS_PER_SLOT and result.ran and not result.completed
                           and result.retry_after <= 0 and not self.stopping
                           and sched.keeps_slot(number, job))
                if not goes_on:
                    sched.step_ended(number, job, result.retry_after, wake_events,
                                     result.completed)
                stats.steps_done += 1
                if result.completed:
                    stats.jobs_completed += 1
                    if result.failed:
                        stats.steps_failed += 1
                stats.step_latency.append(time.perf_counter() - began)
                self.pending_commits += 1
                self._maybe_commit()  # within the window even when an iteration runs many
                if not goes_on:
                    return
        finally:
            self.running -= 1

    # ------------------------------------------------------------------ commits
    def commit_soon(self) -> None:
        """A step waits with writes made (`waiting.about_to_wait`): commit them within the
        window, not when the step ends."""
        if not self.pending_commits:
            self.pending_commits = 1
            self.wakeup.set()  # a loop asleep for IDLE_CHECK_S takes the window instead

    def _maybe_commit(self) -> None:
        if not self.pending_commits:
            return
        if (self.pending_commits >= self.commit_max_pending
                or time.monotonic() - self.last_commit >= self.commit_window):
            self._commit()

    def _commit(self) -> None:
        if store.db_initialized():
            began, cpu = time.perf_counter(), time.thread_time()
            db0.commit()
            took = time.perf_counter() - began
            # by CPU: what grows with the objects held; an fsync's wait is not stretched for
            self.commit_window = commit_window(time.thread_time() - cpu, self.commit_interval,
                                               self.commit_interval_max)
            self.stats.commits += 1
            self.stats.commit_window = self.commit_window
            if hooks.ON:
                hooks.commit_done(took, self.pending_commits)
        self.pending_commits = 0
        self.last_commit = time.monotonic()

    async def _drain(self) -> None:
        """Let in-flight steps finish within the grace period, then cancel the rest."""
        if self.tasks:
            _done, pending = await asyncio.wait(set(self.tasks), timeout=self.grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        self._commit()


_active: set[JobsLoop] = set()
_stop_before_start = [False]
_last_stats: list[LoopStats] = []


def _writes_wait() -> None:
    """`waiting.on_wait`: every running loop commits within its window (a step does not
    know which loop runs it; there is one in all but tests)."""
    for loop in _active:
        loop.commit_soon()


waiting.on_wait = _writes_wait


def active_loops() -> list[JobsLoop]:
    """The loops running in this process (what /metrics and /readyz look at)."""
    return list(_active)


def last_stats() -> LoopStats | None:
    """The live counters of the loop running in this process, or of the last one that ran
    (also when it was cancelled and so returned nothing); None before any loop ran."""
    return _last_stats[0] if _last_stats else None


def stop_loops(abort: bool = False) -> None:
    """Stop the loops of this process (gracefully, or cancelling in-flight steps); one that
    has not started yet (the signal came during start-up) stops as soon as it starts."""
    if not _active:
        _stop_before_start[0] = True
    for worker in list(_active):
        if abort:
            worker.abort()
        else:
            worker.request_stop()


def forget_early_stop() -> None:
    """Drop a stop that no loop took (its worker returned before starting one)."""
    _stop_before_start[0] = False


async def run_jobs_loop(max_concurrency: int = 100, provider: str | None = None, *,
                        queue_prefixes: Sequence[str | int],
                        start_jobs_func: StartJobsFunc | None = None,
                        auto_terminate: bool = False) -> LoopStats:
    """Run the worker loop until stopped (or, with auto_terminate, until nothing can progress).

    Returns the loop's counters."""
    loop = JobsLoop(max_concurrency, provider, queue_prefixes=queue_prefixes,
                    start_jobs_func=start_jobs_func, auto_terminate=auto_terminate)
    return await loop.run()

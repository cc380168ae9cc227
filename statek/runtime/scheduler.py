"""The scheduler's in-memory state: who is ready, who waits on what, which timers are due.

Everything here is plain data keyed by small ints (the `_speedups` kernels); dbzero objects are
fetched only for the jobs an event concerns. Every source of readiness feeds it through
`statek.signals` (new job, message, job finished) or through the runner (a step suspended,
a timer was set), so an iteration costs O(what changed), never O(all jobs).

State lives in dbzero; this is a cache of it that `rebuild()` recreates at start-up with one
indexed query per status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from operator import itemgetter

import dbzero as db0

from statek import signals, store, worker_state
from statek._held import JOBDEFS_HELD, HeldByObject
from statek._speedups import ReadyQueue, TimerHeap, WaiterIndex
from statek.models.agent import Agent
from statek.models.future import JOB, MESSAGE, wake_key
from statek.models.job import Job
from statek.models.jobdef import JobDef
from statek.models.status import DONE, RUNNABLE, STARTED, SUSPENDED, JobStatus

#: Where a job is queued: (its lane, its definition's uuid). One tuple per definition,
#: shared by all its jobs.
Placement = tuple[int, str]


class IdTable:
    """Interns strings (job uuids, wake keys) as small ints, reusing released ones."""

    __slots__ = ("_free", "_ids", "_keys")

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._keys: list[str | None] = []
        self._free: list[int] = []

    def intern(self, key: str) -> int:
        found = self._ids.get(key)
        if found is not None:
            return found
        if self._free:
            number = self._free.pop()
            self._keys[number] = key
        else:
            number = len(self._keys)
            self._keys.append(key)
        self._ids[key] = number
        return number

    def get(self, key: str) -> int | None:
        return self._ids.get(key)

    def key(self, number: int) -> str:
        key = self._keys[number]
        if key is None:
            raise KeyError(number)
        return key

    def items(self) -> list[tuple[str, int]]:
        """(key, number) pairs, a snapshot (for reporting: metrics by wake kind)."""
        return list(self._ids.items())

    def release(self, key: str) -> None:
        number = self._ids.pop(key, None)
        if number is not None:
            self._keys[number] = None
            self._free.append(number)

    def release_number(self, number: int) -> None:
        """`release(key(number))` in one call (a job's number is known when its step ends)."""
        key = self._keys[number]
        if key is not None:
            del self._ids[key]
            self._keys[number] = None
            self._free.append(number)

    def __len__(self) -> int:
        return len(self._ids)


class Scheduler:
    """Ready set, waiter index and timer heap of one worker process."""

    def __init__(self) -> None:
        self.jobs = IdTable()
        self.wake_keys = IdTable()
        self.ready = ReadyQueue()
        self.waiters = WaiterIndex()
        self.timers = TimerHeap()  # deadlines are wall-clock (time.time()) seconds
        self.in_flight: set[int] = set()
        self.pending_wakes: list[int] = []
        #: job_finished/job_messaged calls so far: a step that saw it change while it ran
        #: may have suspended on a future that became ready before its keys were indexed
        self.wake_events = 0
        self.rechecks: list[int] = []  # such jobs: their futures are looked at again
        #: jobdef uuid -> its placement (one lane per agent)
        self._placements: dict[str, Placement] = {}
        #: JobDef object -> its placement: a job's lane costs no uuid read of its definition
        self._placement_of_jobdef: HeldByObject[Placement] = HeldByObject(JOBDEFS_HELD)
        self._agent_lanes: dict[str, int] = {}
        #: job number -> its placement, while the number is the job's (a job's definition
        #: never changes): a job queued again after a step costs no read of its `jobdef`,
        #: and its step finds its definition's facts without reading it (`definition_uuid`)
        self._job_placements: dict[int, Placement] = {}
        self.notify: Callable[[], None] = _nothing
        self.queue_dirty = True
        self.rebuilt = False

    # ----------------------------------------------------------- signal listener
    def job_runnable(self, job_uuid: str, job: Job | None = None,
                     jobdef: JobDef | None = None) -> None:
        """Queue the job in its agent's lane: found from `job` or `jobdef` when the caller
        gave one, else from the job fetched by uuid."""
        number = self.jobs.intern(job_uuid)
        if number in self.in_flight:
            return  # the runner re-queues it when its step ends, by its status then
        placed = self._job_placements.get(number)
        if placed is None:
            if jobdef is None:
                jobdef = (db0.fetch(job_uuid) if job is None else job).jobdef
            placed = self._job_placements[number] = self._placement_of_def(jobdef)
        self.ready.push(number, placed[0])
        self.notify()

    def job_finished(self, job_uuid: str) -> None:
        self.wake_events += 1
        if len(self.timers) or len(self.waiters):  # a suspended job cancelled: it waits no
            number = self.jobs.get(job_uuid)  # more (its timer kept an auto_terminate loop
            if number is not None:  # running until it fired)
                self.timers.cancel(number)
                self.waiters.remove_job(number)
        if not len(self.wake_keys):  # nothing waits on anything: no key to format
            return
        key = self.wake_keys.get(wake_key(JOB, job_uuid))
        if key is not None:
            self.pending_wakes.append(key)
            self.notify()

    def job_messaged(self, job_uuid: str) -> None:
        self.wake_events += 1
        key = self.wake_keys.get(wake_key(MESSAGE, job_uuid))
        if key is not None:
            self.pending_wakes.append(key)
            self.notify()

    def timer_set(self, job_uuid: str, deadline: float) -> None:
        """Nothing to do until the job actually suspends on the timer (see `index`)."""

    def queue_pushed(self) -> None:
        self.queue_dirty = True
        self.notify()

    # ----------------------------------------------------------- lanes
    def _lane_for(self, number: int, job: Job) -> int:
        """The lane of job `number` (`job`), remembered for its next push."""
        placed = self._job_placements.get(number)
        if placed is None:
            placed = self._job_placements[number] = self._placement_of_def(job.jobdef)
        return placed[0]

    def definition_uuid(self, job_uuid: str) -> str | None:
        """The uuid of the definition of a job this scheduler has queued (None if unknown):
        its step then finds the definition's facts without reading `job.jobdef` (~6 µs,
        docs/costs.md#cost-table, C12)."""
        number = self.jobs.get(job_uuid)
        placed = None if number is None else self._job_placements.get(number)
        return None if placed is None else placed[1]

    def _placement_of_def(self, jobdef: JobDef) -> Placement:
        """One lane per agent, so a busy agent cannot starve the others."""
        known = self._placement_of_jobdef.get(jobdef)
        if known is not None:
            return known
        return self._new_placement(jobdef)

    def _new_placement(self, jobdef: JobDef) -> Placement:
        jobdef_id = str(db0.uuid(jobdef))
        placed = self._placements.get(jobdef_id)
        if placed is None:
            agent_id = db0.uuid(jobdef.agent)
            lane = self._agent_lanes.setdefault(agent_id, len(self._agent_lanes))
            placed = self._placements[jobdef_id] = (lane, jobdef_id)
        self._placement_of_jobdef.put(jobdef, placed)
        return placed

    def agent_lane(self, agent: Agent) -> int:
        return self._agent_lanes.setdefault(db0.uuid(agent), len(self._agent_lanes))

    # ----------------------------------------------------------- runner side
    def take(self, capacity: int) -> list[int]:
        """Up to `capacity` ready jobs, fairly across agents, marked in flight."""
        if capacity <= 0 or not len(self.ready):
            return []
        batch: list[int] = self.ready.pop_batch(capacity)
        self.in_flight.update(batch)
        return batch

    def uuid_of(self, number: int) -> str:
        return self.jobs.key(number)

    def keeps_slot(self, number: int, job: Job) -> bool:
        """Whether job `number`, whose step just left it runnable with no retry delay, runs
        its next step at once in the same slot rather than queueing for one. It does unless
        another agent's jobs wait: they keep their round-robin turn. Within an agent a
        started job goes on (the loop bounds the run at `STEPS_PER_SLOT`), so fewer are in
        flight and each is fetched, launched and scheduled once per run of steps instead of
        once per step. Observers hear of the
        step's end here, as `step_ended` would tell them."""
        if job.state not in RUNNABLE:
            return False
        ready = self.ready
        waiting = len(ready)
        if waiting and ready.lane_len(self._lane_for(number, job)) != waiting:
            return False
        if signals.observers:
            signals.job_changed(self.jobs.key(number), job)
        return True

    def step_ended(self, number: int, job: Job, retry_after: float,
                   wake_events_before: int = -1, finished: bool = False) -> None:
        """Route a job by the status its step left it in (and tell observers, if any).

        `wake_events_before` is `wake_events` when the step began. A step that waited
        (isolation="process", a model call) can see its future unready, then the job or
        message it waits on arrive before its keys are indexed here: that wake-up found no
        waiter. So when any arrived meanwhile the job's future is checked again in the next
        `unsuspend` (the default, -1, always checks). `finished`: the step ended the job
        (it is DONE: nothing runs between that and this call), which spares reading it."""
        if signals.observers:
            signals.job_changed(self.jobs.key(number), job)
        self.in_flight.discard(number)
        state = DONE if finished else job.state
        if state in RUNNABLE:
            if retry_after > 0:
                self.timers.schedule(number, time.time() + retry_after)
            else:
                self.ready.push(number, self._lane_for(number, job))
        elif state == SUSPENDED:
            self.index(number, job)
            if self.wake_events != wake_events_before:
                self.rechecks.append(number)
                self.notify()
        else:  # DONE: forget it (waiters on it were woken through job_finished)
            self._job_placements.pop(number, None)  # before the number can be another job's
            self.jobs.release_number(number)

    def index(self, number: int, job: Job) -> None:
        """Register what a suspended job's future waits on."""
        future = job.awaiting
        if future is None:
            self.ready.push(number, self._lane_for(number, job))
            return
        deadline: float | None = None
        now = time.time()
        for kind, what in future.wake_keys():
            if kind == "time":
                deadline = what if deadline is None else min(deadline, what)
            elif kind == "poll":
                due = now + what
                deadline = due if deadline is None else min(deadline, due)
            else:
                self.waiters.add(self.wake_keys.intern(wake_key(kind, what)), number)
        if deadline is not None:
            self.timers.schedule(number, deadline)

    def due(self, now: float) -> list[int]:
        """Jobs whose wake-up condition may have changed: due timers and woken waiters."""
        candidates: list[int] = self.timers.pop_due(now)
        if self.rechecks:
            candidates.extend(self.rechecks)
            self.rechecks = []
        if self.pending_wakes:
            wakes, self.pending_wakes = self.pending_wakes, []
            for key in wakes:
                candidates.extend(self.waiters.wake(key))
        return candidates

    def unsuspend(self, now: float | None = None) -> int:
        """Move suspended jobs whose futures are ready to STARTED; O(candidates)."""
        candidates = self.due(time.time() if now is None else now)
        if not candidates:
            return 0
        woken = 0
        with store.transition():
            for number in candidates:
                if number in self.in_flight:
                    continue
                try:
                    job = db0.fetch(self.jobs.key(number))
                except (KeyError, RuntimeError):
                    continue
                woken += self._wake(number, job)
        return woken

    def _wake(self, number: int, job: Job) -> int:
        state = job.state
        if state != SUSPENDED:
            if state in RUNNABLE:
                self.ready.push(number, self._lane_for(number, job))  # e.g. a provider retry
            return 0
        self.waiters.remove_job(number)
        self.timers.cancel(number)
        future = job.awaiting
        try:
            ready = future is None or future.is_ready()
        except Exception as exc:
            job.write_console(f"[statek] future check failed: {exc!r}\n")
            job.finish(error=f"future check failed: {exc!r}")
            return 0
        if not ready:
            self.index(number, job)
            return 0
        job.awaiting = None
        job.set_status(STARTED)
        self.ready.push(number, self._lane_for(number, job))
        return 1

    # ----------------------------------------------------------- start-up
    def rebuild(self, prefixes: Iterable[str | None] = (None,)) -> dict[str, int]:
        """Recreate the in-memory state from dbzero: one indexed query per status.

        Returns counts: "ready" (runnable jobs queued), "suspended" (suspended jobs checked)
        and "woken" (of those, moved to STARTED: their futures became ready while no worker
        watched them)."""
        self.rebuilt = True
        counts = {"ready": 0, "suspended": 0, "woken": 0}
        for prefix in prefixes:
            kwargs = {} if prefix is None else {"prefix": prefix}
            for number, lane in self._runnable_oldest_first(kwargs):
                if number not in self.in_flight and self.ready.push(number, lane):
                    counts["ready"] += 1
            suspended = [db0.uuid(job) for job in db0.find(Job, JobStatus.SUSPENDED, **kwargs)]
            with store.transition():
                for job_uuid in suspended:
                    number = self.jobs.intern(job_uuid)
                    if number not in self.waiters and self.timers.deadline_of(number) is None:
                        counts["suspended"] += 1
                        counts["woken"] += self._wake(number, db0.fetch(job_uuid))
        return counts

    def _runnable_oldest_first(self, kwargs: dict[str, str]) -> list[tuple[int, int]]:
        """(number, lane) of the runnable jobs a new worker queues, oldest first, as a
        running worker would have queued them (so the agents' lanes also take turns in the
        order of their oldest jobs). Each job is read once while dbzero's query is walked and
        let go at once: listing the job objects first cost about 1.5x as much per job
        (docs/costs.md#cost-table, C29)."""
        found: list[tuple[float, int, int]] = []
        for name in ("READY", "WARMING_UP", "STARTED"):
            jobs: list[tuple[float, int, int]] = []
            for job in db0.find(Job, getattr(JobStatus, name), **kwargs):
                # numbers in query order (they are only ids); a job in flight is placed too
                number = self.jobs.intern(db0.uuid(job))
                jobs.append((job.created_at, number, self._lane_for(number, job)))
            jobs.reverse()  # dbzero gives newest first
            found += jobs
        found.sort(key=itemgetter(0))  # stable: ties keep the order above
        return [(number, lane) for _, number, lane in found]

    def detach(self) -> None:
        """Stop waking a loop (it has ended)."""
        self.notify = _nothing

    # ----------------------------------------------------------- reporting
    def waiting_count(self) -> int:
        """Jobs indexed as waiting (a job waiting on a timer and a key counts twice)."""
        return len(self.waiters) + len(self.timers)


def _nothing() -> None:
    return None


def current_scheduler() -> Scheduler:
    """The worker's scheduler, created and subscribed to signals on first use; its state
    owner (statek.worker_state) unsubscribes and drops it when the store closes."""
    state = worker_state.current()
    sched = state.scheduler
    if sched is None:
        sched = state.scheduler = Scheduler()
        signals.subscribe(sched)
    return sched

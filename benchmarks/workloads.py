"""Workloads W1-W7 (docs/workloads.md) and `restart` (a worker's start-up over N runnable
jobs), one data point per call, in the current process.

    python -m benchmarks.workloads --one W1 --n 10000     # prints one JSON line
    python -m benchmarks.run_all                          # every workload, fresh processes

Each `wN(...)` function opens a fresh store, sets up (untimed), measures, and returns a dict:
`workload`, `figure` (the number the target is about), `unit`, `params`, `implementation`
(which scheduler kernels were active: "compiled" or "pure") and workload-specific details.
The main size parameter (N, S or M) is the first argument of every function and `--n` on the
command line. Job creation and other setup never count in a figure.

Memory rule (docs/storage.md#s3-commit-cost-grows-with-live-references): no Python
references to many memo objects are held across commits; setup keeps uuids and lets objects go.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks._harness import fresh_store

PREFIX = "bench"
#: Marks recorded by the `bench_mark` tool: (kind, i) -> time.perf_counter().
MARKS: dict[tuple[str, int], float] = {}
#: Set by `bench_mark("resume", ...)`: a parent resumed.
RESUMED: list[asyncio.Event] = []


def bench_mark(kind: str, i: int) -> None:
    """Record when job code reached this call (W5 latencies)."""
    MARKS[(kind, int(i))] = time.perf_counter()
    if kind == "resume":
        for event in RESUMED:
            event.set()


# ----------------------------------------------------------------------------- helpers


def implementation() -> str:
    from statek import _speedups

    return _speedups.IMPLEMENTATION


def event_loop() -> str:
    """The loop the runs of `run_like_a_worker` use: "uvloop" or "asyncio"."""
    from statek.runner import event_loop_factory

    return "asyncio" if event_loop_factory(None) is None else "uvloop"


def run_like_a_worker(coro: Any) -> Any:
    """Run `coro` on the event loop `statek worker` would use (uvloop with the `fast` extra,
    unless STATEK_USE_UVLOOP=0), so a figure is what a worker reaches."""
    from statek.runner import event_loop_factory

    with asyncio.Runner(loop_factory=event_loop_factory(None)) as runner:
        return runner.run(coro)


def _result(workload: str, figure: float, unit: str, params: dict[str, Any],
            **details: Any) -> dict[str, Any]:
    return {"workload": workload, "figure": figure, "unit": unit, "params": params,
            "implementation": implementation(), **details}


def rss_bytes() -> int:
    """Current resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reopen(root: str, autocommit: bool = False) -> None:
    """Close everything and open the store again, as a restarted worker would (the documented
    start-up: `db0.init`, `statek.init`, `statek.open_prefix`).

    `autocommit=True` opens the prefix with dbzero's autocommit on, which makes statek hold
    `db0.locked()` in its transitions; that can deadlock dbzero 0.7.0 (see `w5`)."""
    import dbzero as db0

    import statek

    statek.close()
    gc.collect()
    db0.init(dbzero_root=root)
    statek.init()
    statek.open_prefix(PREFIX, "rw", autocommit=autocommit)


@contextlib.contextmanager
def _quiet_loop_logs() -> Iterator[None]:
    """Keep the loop quiet about the jobs W3/W5 leave suspended on purpose."""
    import logging

    logger = logging.getLogger("statek.loop")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _loop_stats_dict(stats: Any) -> dict[str, Any]:
    keep = ("steps_done", "jobs_completed", "steps_failed", "max_in_flight", "commits",
            "iterations", "stranded", "messages_delivered")
    out = {k: getattr(stats, k) for k in keep}
    out["step_latency_median_ms"] = stats.step_latency_median() * 1e3
    out["iteration_time_median_ms"] = stats.iteration_time_median() * 1e3
    return out


PARENT_WARMUP = "result = delegate(child_agent, i=i).value\nexit(result)"
CHILD_WARMUP = "sleep(10**9).value\nexit('late')"


def make_waiting_pairs(pairs: int, batch: int = 2000) -> dict[str, Any]:
    """`pairs` parent jobs SUSPENDED on a child job each; every child SUSPENDED on a far timer.

    The state is written directly through the model, as a step leaves it after the parent
    ran `result = delegate(child_agent, i=i).value` and the child `sleep(10**9).value`
    (same futures, `awaiting`, status through `set_status`), because stepping 100k+ jobs
    would take minutes of setup. The replay table (`sites`) is left out: it is read only
    when a job resumes, these never do, and it would double the setup time.
    `tests/e2e/test_benchmarks_smoke.py`
    checks that real steps index the same wake keys. Objects are created in committed
    batches and no references are kept."""
    import dbzero as db0

    import statek
    from statek.models.future import JOB, TIMER, Future
    from statek.models.job import Job
    from statek.models.root import root_for
    from statek.models.status import SUSPENDED
    from statek.models.submit import jobdef_for
    from statek.store import transition

    started = time.perf_counter()
    parent_agent = statek.Agent("bench-parent")
    child_agent = statek.Agent("bench-child")
    parent_def = jobdef_for(parent_agent, {"warmup_code": PARENT_WARMUP})
    child_def = jobdef_for(child_agent, {"warmup_code": CHILD_WARMUP})
    anchor = root_for().jobs
    far = time.time() + 10**9
    for start in range(0, pairs, batch):
        with transition():
            for i in range(start, min(pairs, start + batch)):
                parent = Job(parent_def, {"i": i, "child_agent": child_agent})
                anchor.append(parent)
                child = Job(child_def, {"i": i}, None, parent)
                anchor.append(child)
                child.awaiting = Future(TIMER, child, deadline=far)
                child.set_status(SUSPENDED)
                parent.awaiting = Future(JOB, parent, target=child)
                parent.set_status(SUSPENDED)
            del parent, child
        db0.commit()
    return {"pairs": pairs, "setup_s": time.perf_counter() - started,
            "parent_agent": db0.uuid(parent_agent), "child_agent": db0.uuid(child_agent)}


async def _start_loop(max_concurrency: int, provider: str | None = None,
                      **kwargs: Any) -> tuple[Any, asyncio.Task[Any], float]:
    """A JobsLoop running as a task, after its start-up (rebuild + first iteration)."""
    from statek.runtime.loop import JobsLoop

    loop = JobsLoop(max_concurrency, provider, queue_prefixes=[PREFIX], **kwargs)
    began = time.perf_counter()
    task = asyncio.create_task(loop.run())
    while loop.stats.iterations == 0:
        if task.done():
            task.result()  # raises what the loop raised
            raise RuntimeError("the loop ended before its first iteration")
        await asyncio.sleep(0.001)
    return loop, task, time.perf_counter() - began


async def _stop_loop(loop: Any, task: asyncio.Task[Any]) -> Any:
    loop.request_stop()
    return await task


# ----------------------------------------------------------------------------- W1


def w1(n: int = 10_000, concurrency: int = 1000) -> dict[str, Any]:
    """N jobs whose warmup is `exit('done')`, run to completion; jobs/s."""
    import statek
    from statek.executors.utils import run_jobs_loop

    with fresh_store(PREFIX):
        agent = statek.Agent("bench-w1")
        created = time.perf_counter()
        ids = statek.StatekClientAPI().submit_new_job_ids(
            agent, [{"i": i} for i in range(n)], warmup_code="exit('done')")
        create_s = time.perf_counter() - created
        del ids, agent
        gc.collect()
        loop_kind = event_loop()  # under the store's settings, as the run below
        began, cpu_began = time.perf_counter(), time.process_time()
        stats = run_like_a_worker(run_jobs_loop(concurrency, queue_prefixes=[PREFIX],
                                                auto_terminate=True))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return _result("W1", stats.jobs_completed / elapsed, "jobs/s",
                   {"n": n, "max_concurrency": concurrency},
                   event_loop=loop_kind, loop_s=elapsed, loop_cpu_s=cpu,
                   jobs_per_cpu_s=stats.jobs_completed / cpu,
                   create_s=create_s, **_loop_stats_dict(stats))


def restart(n: int = 40_000) -> dict[str, Any]:
    """A restarted worker's start-up over `n` READY jobs: the scheduler's rebuild (one
    indexed query per runnable status, every job queued in its lane, oldest first); µs per
    job. Not one of W1-W7: W1 includes this once, so it shows what of W1's time at large N
    is start-up (docs/costs.md#cost-table, C29)."""
    import statek
    from statek.runtime.scheduler import Scheduler

    with fresh_store(PREFIX) as root:
        agent = statek.Agent("bench-restart")
        statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(n)],
                                                    warmup_code="exit('done')")
        del agent
        _reopen(root)
        gc.collect()
        began = time.perf_counter()
        counts = Scheduler().rebuild()
        elapsed = time.perf_counter() - began
    return _result("restart", elapsed / max(n, 1) * 1e6, "µs/job", {"n": n},
                   rebuild_s=elapsed, queued=counts["ready"])


# ----------------------------------------------------------------------------- W2 / W6


def _steps_run(n: int, concurrency: int, latency: float) -> dict[str, Any]:
    """N jobs without warmup, an offline provider answering `exit('ok')` after `latency` s:
    each job is two steps (the request, then running the reply). Steps/s of the loop."""
    import statek
    from statek.executors.utils import run_jobs_loop
    from statek.providers import ScriptedProvider, add_provider

    provider = ScriptedProvider(["exit('ok')"], latency=latency)
    add_provider("bench", provider)
    with fresh_store(PREFIX):
        agent = statek.Agent("bench-steps")
        ids = statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(n)])
        del ids, agent
        gc.collect()
        loop_kind = event_loop()  # under the store's settings, as the run below
        began, cpu_began = time.perf_counter(), time.process_time()
        stats = run_like_a_worker(run_jobs_loop(concurrency, "bench", queue_prefixes=[PREFIX],
                                                auto_terminate=True))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return {"steps_per_s": stats.steps_done / elapsed, "event_loop": loop_kind,
            "loop_s": elapsed, "loop_cpu_s": cpu,
            "steps_per_cpu_s": stats.steps_done / cpu,
            "provider_calls": provider.calls, **_loop_stats_dict(stats)}


def w2(n: int = 2000, concurrency: int = 100) -> dict[str, Any]:
    """Two-step jobs against a zero-latency offline provider; steps/s."""
    run = _steps_run(n, concurrency, 0.0)
    return _result("W2", run.pop("steps_per_s"), "steps/s",
                   {"n": n, "max_concurrency": concurrency}, **run)


def w6(n: int = 20_000, concurrency: int = 5000, latency: float = 0.1) -> dict[str, Any]:
    """W2's jobs with a slow provider at high concurrency: % of min(concurrency/latency,
    CPU bound). The CPU bound is the same run with latency 0 in this process (after a small
    warm-up run, so neither measured run pays for first-use costs)."""
    _steps_run(min(n, 1000), min(concurrency, 1000), 0.0)  # warm-up, discarded
    cpu = _steps_run(n, concurrency, 0.0)
    slow = _steps_run(n, concurrency, latency)
    provider_bound = concurrency / latency if latency > 0 else float("inf")
    ideal = min(provider_bound, cpu["steps_per_s"])
    return _result("W6", 100.0 * slow["steps_per_s"] / ideal, "% of ideal",
                   {"n": n, "max_concurrency": concurrency, "latency_s": latency},
                   event_loop=slow["event_loop"], steps_per_s=slow["steps_per_s"],
                   cpu_bound_steps_per_s=cpu["steps_per_s"],
                   provider_bound_steps_per_s=provider_bound, ideal_steps_per_s=ideal,
                   slow_run=slow, cpu_run=cpu)


# ----------------------------------------------------------------------------- W3


async def _poke(loop: Any, count: int, dirty_queue: bool) -> list[float]:
    """Wake the idle loop `count` times; the body time of each iteration it ran (s)."""
    times: list[float] = []
    for _ in range(count):
        before = loop.stats.iterations
        if dirty_queue:
            loop.sched.queue_dirty = True
        loop.wakeup.set()
        for _ in range(100_000):  # the loop runs its iteration at our next yield or so
            await asyncio.sleep(0)
            if loop.stats.iterations != before:
                break
        else:
            raise RuntimeError("the loop did not iterate when woken")
        times.append(loop.stats.iteration_time[-1])
    return times


def w3(s: int = 10_000, iterations: int = 500) -> dict[str, Any]:
    """S parents SUSPENDED on children that never run (the children wait on a far timer):
    the cost of one loop iteration with nothing ready, median over `iterations`.

    The figure is the iteration body (wake-ups, queue checks, launch, commit check) with the
    queue flagged as pushed-to, so the queue check really runs; `idle_us` is the same
    iteration without that flag (what an iteration woken by a step ending costs)."""
    import statek._speedups  # noqa: F401 - resolve the kernels before timing
    from statek.runtime.scheduler import current_scheduler

    with fresh_store(PREFIX) as root:
        setup = make_waiting_pairs(s)
        _reopen(root)  # a worker restarting over S waiting jobs

        async def measure() -> dict[str, Any]:
            loop, task, startup = await _start_loop(1000)
            await _poke(loop, 20, dirty_queue=False)  # settle
            idle = await _poke(loop, iterations, dirty_queue=False)
            checked = await _poke(loop, iterations, dirty_queue=True)
            sched = current_scheduler()
            unsuspend = []
            for _ in range(iterations):
                t = time.perf_counter()
                sched.unsuspend()
                unsuspend.append(time.perf_counter() - t)
            waiting = sched.waiting_count()
            stats = await _stop_loop(loop, task)
            return {"startup_s": startup, "idle": idle, "checked": checked,
                    "unsuspend": unsuspend, "waiting_indexed": waiting,
                    "ready_after": len(sched.ready), "stats": stats}

        with _quiet_loop_logs():
            got = asyncio.run(measure())
    stats = got["stats"]
    return _result("W3", statistics.median(got["checked"]) * 1e6, "µs/iteration",
                   {"s": s, "iterations": iterations},
                   idle_us=statistics.median(got["idle"]) * 1e6,
                   unsuspend_us=statistics.median(got["unsuspend"]) * 1e6,
                   p90_us=sorted(got["checked"])[int(0.9 * len(got["checked"]))] * 1e6,
                   startup_s=got["startup_s"], setup_s=setup["setup_s"],
                   waiting_indexed=got["waiting_indexed"], suspended_jobs=2 * s,
                   steps_done=stats.steps_done, ready_after=got["ready_after"])


# ----------------------------------------------------------------------------- W4


def w4(m: int = 10_000, jobs: int = 1000, push_batch: int = 10_000) -> dict[str, Any]:
    """M messages queued for `jobs` DONE jobs (round-robin); the time to deliver all of
    them the way the loop does (batches of QUEUE_STEP, at most QUEUE_MAX_PER_ITERATION per
    call, a commit whenever `commit_max_pending` deliveries are pending, one at the end);
    µs per message. Delivering re-opens each DONE job once (it becomes ready)."""
    import dbzero as db0

    import statek
    from statek import store
    from statek.executors.utils import process_push_notifications, run_jobs_loop
    from statek.models.push_queue import StatekPushQueue
    from statek.runtime.loop import QUEUE_MAX_PER_ITERATION, QUEUE_STEP
    from statek.runtime.scheduler import current_scheduler

    with fresh_store(PREFIX):
        agent = statek.Agent("bench-w4")
        ids = statek.StatekClientAPI().submit_new_job_ids(
            agent, [{"i": i} for i in range(jobs)], warmup_code="exit('done')")
        del agent
        done = asyncio.run(run_jobs_loop(1000, queue_prefixes=[PREFIX], auto_terminate=True))
        queue = StatekPushQueue(PREFIX)
        for start in range(0, m, push_batch):
            queue.push_messages([(ids[k % jobs], f"message {k}")
                                 for k in range(start, min(m, start + push_batch))])
            db0.commit()
        queued = queue.message_count()
        del queue
        sched = current_scheduler()  # subscribed, as under a running loop
        max_pending = store.settings().commit_max_pending
        gc.collect()
        began = time.perf_counter()
        delivered = pending = calls = commits = 0
        while True:
            got = process_push_notifications(QUEUE_STEP, QUEUE_MAX_PER_ITERATION,
                                              queue_prefixes=[PREFIX])
            if not got:
                break
            calls += 1
            delivered += got
            pending += got
            if pending >= max_pending:
                db0.commit()
                commits += 1
                pending = 0
        db0.commit()
        commits += 1
        elapsed = time.perf_counter() - began
        left = StatekPushQueue(PREFIX).message_count()
        inboxes = sum(len(db0.fetch(u).messages) for u in ids)
        reopened = len(sched.ready)
    return _result("W4", elapsed / max(delivered, 1) * 1e6, "µs/msg",
                   {"m": m, "jobs": jobs}, delivered=delivered, queued=queued, left=left,
                   in_inboxes=inboxes, reopened_ready=reopened, deliver_s=elapsed,
                   calls=calls, commits=commits, jobs_done_before=done.jobs_completed)


# ----------------------------------------------------------------------------- W5


def _register_tool() -> None:
    import statek

    statek.tool(bench_mark)


def _where_is(loop: Any, parent_uuid: str) -> dict[str, Any]:
    """Where a W5 parent that did not resume in time is: its status, what it awaits and
    what the scheduler holds for it (a sample that is late, not lost, shows as waiting on
    a child that is not DONE yet)."""
    import dbzero as db0

    sched = loop.sched
    parent = db0.fetch(parent_uuid)
    number = sched.jobs.get(parent_uuid)
    where: dict[str, Any] = {
        "parent_status": str(parent.state), "parent_error": parent.error,
        "number": number, "in_flight": number in sched.in_flight,
        "waiting": number is not None and number in sched.waiters,
        "timer": None if number is None else sched.timers.deadline_of(number),
        "pending_wakes": list(sched.pending_wakes), "loop_tasks": len(loop.tasks),
        "iterations": loop.stats.iterations, "console": parent.console[-5:]}
    future = parent.awaiting
    if future is not None:
        keys = list(future.wake_keys())
        where["awaits"] = keys
        for kind, what in keys:
            if kind == "job":
                child = db0.fetch(what)
                child_number = sched.jobs.get(what)
                where["child_status"] = str(child.state)
                where["child_in_flight"] = child_number in sched.in_flight
                where["key_interned"] = sched.wake_keys.get("job:" + what)
    return where


def w5(suspended: int = 10_000, samples: int = 100, gap: float = 0.01,
       autocommit: bool = False) -> dict[str, Any]:
    """Latencies under a running loop with `suspended` other jobs waiting (half parents on
    a child, half children on a far timer): submit (call start, same process) -> the new
    job's first statement; a child's last statement -> its waiting parent's first statement
    after resuming. Medians in ms over `samples` sequential parent/child pairs.

    The prefix is opened the statek way (dbzero autocommit off; the loop and submit commit).
    `autocommit=True` (`--autocommit`) opens it with autocommit on, so transitions hold
    `db0.locked()`: dbzero 0.7.0 can then deadlock (its autocommit thread waits for the GIL
    while holding the lock `locked()` waits for)."""
    import dbzero as db0

    import statek

    _register_tool()
    MARKS.clear()
    with fresh_store(PREFIX) as root:
        setup = make_waiting_pairs(suspended // 2)
        _reopen(root, autocommit=autocommit)
        parent_agent = statek.Agent("bench-w5-parent", tools=["bench_mark"])
        child_agent = statek.SupervisedAgent("bench-w5-child", tools=["bench_mark"])
        api = statek.StatekClientAPI()
        parent_code = ("bench_mark('start', i)\n"
                       "result = delegate(child_agent, i=i).value\n"
                       "bench_mark('resume', i)\n"
                       "exit(result)")
        child_code = "bench_mark('child', i)\nexit('ok')"
        child_uuid = db0.uuid(child_agent)
        child_agent.update_warmup_def(child_code)  # delegate() runs the agent's own warmup

        async def measure() -> dict[str, Any]:
            loop, task, startup = await _start_loop(1000)
            submitted: dict[int, tuple[float, float]] = {}
            missing = 0
            stuck: list[dict[str, Any]] = []
            resumed = asyncio.Event()
            RESUMED[:] = [resumed]
            for k in range(samples):
                await asyncio.sleep(gap)
                resumed.clear()
                t0 = time.perf_counter()
                job = api.submit_new_job(parent_agent, {"i": k, "child_agent": child_agent},
                                         warmup_code=parent_code)
                t1 = time.perf_counter()
                parent_uuid = db0.uuid(job)
                del job
                submitted[k] = (t0, t1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        while ("resume", k) not in MARKS:
                            await resumed.wait()
                            resumed.clear()
                if ("resume", k) not in MARKS:
                    missing += 1
                    stuck.append(_where_is(loop, parent_uuid))
            RESUMED.clear()
            stats = await _stop_loop(loop, task)
            return {"submitted": submitted, "missing": missing, "startup_s": startup,
                    "stats": stats, "stuck": stuck}

        with _quiet_loop_logs():
            got = asyncio.run(measure())
        child_exists = db0.exists(child_uuid)
    submitted = got["submitted"]
    first = [MARKS[("start", k)] - t0 for k, (t0, _) in submitted.items()
             if ("start", k) in MARKS]
    first_after_return = [MARKS[("start", k)] - t1 for k, (_, t1) in submitted.items()
                          if ("start", k) in MARKS]
    resume = [MARKS[("resume", k)] - MARKS[("child", k)] for k in submitted
              if ("resume", k) in MARKS and ("child", k) in MARKS]
    stats = got["stats"]
    return _result("W5", max(med(first), med(resume)), "ms (worse median)",
                   {"suspended": suspended, "samples": samples},
                   submit_to_first_step_ms=med(first),
                   submit_return_to_first_step_ms=med(first_after_return),
                   child_done_to_parent_resume_ms=med(resume),
                   submit_p90_ms=p90(first), resume_p90_ms=p90(resume),
                   samples_first=len(first), samples_resume=len(resume),
                   missing=got["missing"], startup_s=got["startup_s"],
                   setup_s=setup["setup_s"], jobs_completed=stats.jobs_completed,
                   steps_done=stats.steps_done, child_agent_alive=child_exists,
                   autocommit=autocommit, stuck=got["stuck"])


def med(xs: list[float]) -> float:
    """Median of seconds, in ms (NaN for no samples)."""
    return statistics.median(xs) * 1e3 if xs else float("nan")


def p90(xs: list[float]) -> float:
    """90th percentile of seconds, in ms (NaN for no samples)."""
    return sorted(xs)[int(0.9 * len(xs))] * 1e3 if xs else float("nan")


# ----------------------------------------------------------------------------- W7


def w7(n: int = 100_000) -> dict[str, Any]:
    """RSS per suspended job: `n` suspended jobs (n/2 parents on a child each, n/2 children
    on a far timer) in a store reopened as by a restarted worker.

    `figure` is the scheduler's in-memory state: the RSS growth of building a second,
    independent Scheduler over the same jobs (dbzero's pages are already cached by then).
    `first_index_bytes_per_job` is the growth of the first build (scheduler + dbzero cache);
    their difference estimates the dbzero side. `python_objects_bytes_per_job` is what
    tracemalloc sees a third build keep (Python objects only)."""
    from statek.runtime.scheduler import Scheduler, current_scheduler

    with fresh_store(PREFIX) as root:
        setup = make_waiting_pairs(n // 2)
        _reopen(root)
        gc.collect()
        rss0 = rss_bytes()
        began = time.perf_counter()
        first = current_scheduler()
        counts = first.rebuild()
        index_s = time.perf_counter() - began
        gc.collect()
        rss1 = rss_bytes()
        second = Scheduler()
        second.rebuild()
        gc.collect()
        rss2 = rss_bytes()
        jobs = 2 * (n // 2)
        indexed = (len(first.waiters), len(first.timers), len(second.waiters),
                   len(second.timers))
        del second
        python_side = _traced_rebuild_bytes()
    scheduler_per_job = (rss2 - rss1) / jobs
    first_per_job = (rss1 - rss0) / jobs
    return _result("W7", scheduler_per_job, "bytes/job", {"n": jobs},
                   first_index_bytes_per_job=first_per_job,
                   dbzero_side_bytes_per_job=first_per_job - scheduler_per_job,
                   python_objects_bytes_per_job=python_side / jobs,
                   rss_before_mb=rss0 / 2**20, rss_after_first_mb=rss1 / 2**20,
                   rss_after_second_mb=rss2 / 2**20, index_s=index_s,
                   rebuild_counts=counts, waiters_first=indexed[0], timers_first=indexed[1],
                   waiters_second=indexed[2], timers_second=indexed[3],
                   setup_s=setup["setup_s"])


def _traced_rebuild_bytes() -> int:
    """Bytes of Python objects a freshly rebuilt Scheduler keeps (tracemalloc; the compiled
    kernels' C++ containers are invisible to it, the pure twin's dicts and sets are not)."""
    import tracemalloc

    from statek.runtime.scheduler import Scheduler

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        third = Scheduler()
        third.rebuild()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
        del third
    finally:
        tracemalloc.stop()
    return kept


# ----------------------------------------------------------------------------- CLI

WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {
    "W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7,
    "restart": restart,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--n", type=int, help="the main size: N, S or M")
    parser.add_argument("--concurrency", type=int, help="max_concurrency (W1, W2, W6)")
    parser.add_argument("--latency", type=float, help="provider latency in s (W6)")
    parser.add_argument("--samples", type=int, help="W5 samples / W3 iterations")
    parser.add_argument("--autocommit", action="store_true",
                        help="W5: keep dbzero autocommit on (can deadlock, see w5)")
    parser.add_argument("--watchdog", type=float, default=600.0,
                        help="dump every thread's stack and exit after this many seconds "
                             "(a hang becomes an error with a traceback)")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a crash in native code leaves a traceback on stderr
    if args.watchdog > 0:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    kwargs: dict[str, Any] = {}
    func = WORKLOADS[args.one]
    names = func.__code__.co_varnames[: func.__code__.co_argcount]
    if args.n is not None:
        kwargs[names[0]] = args.n
    if args.concurrency is not None and "concurrency" in names:
        kwargs["concurrency"] = args.concurrency
    if args.latency is not None and "latency" in names:
        kwargs["latency"] = args.latency
    if args.autocommit and "autocommit" in names:
        kwargs["autocommit"] = True
    if args.samples is not None:
        for name in ("samples", "iterations"):
            if name in names:
                kwargs[name] = args.samples
    result = func(**kwargs)
    sys.stdout.flush()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

"""The main job: a small fleet run end to end by a real worker, offline.

A dispatcher agent delegates work to helper jobs and waits for all of them, a timer job sleeps,
a messenger job waits for a pushed message, and an analyst job talks to the offline `scripted`
provider for two turns. The worker is told to use `scripted` (nothing falls back to it), so
the demo needs no network or key. Everything lives in the embedded store, so running it again
adds a new round beside the old one.

While it runs, `watch` shows the round's jobs by status, steps/s and the elapsed time (a rich
live display on a terminal); `summary_table` is the table printed at the end. With a
dashboard port, the worker's HTTP server (API and dashboard) runs on the demo's loop from the
start and keeps serving after the round until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dbzero as db0

from statek import store
from statek.models.agent import Agent, SupervisedAgent
from statek.models.job import Job
from statek.models.root import root_for
from statek.models.status import DONE, STATUS_NAMES, status_value
from statek.providers import ScriptedProvider, add_provider
from statek.runtime.agentic import AgentLoopDef, run_agentic_fleet
from statek.runtime.loop import last_stats
from statek.runtime.os_signals import stop_event
from statek.runtime.stats import LoopStats
from statek.statek_client_api import StatekClientAPI

DISPATCH = """\
parts = [delegate(helper, n=k) for k in range(helpers)]
squares = get_all(parts).value
print("squares:", squares)
exit(sum(squares))
"""
OFFLINE_PROVIDER = "scripted"  # chosen explicitly: no job falls back to it
ANALYST_REPLIES = [
    "total = sum(range(10))\nprint('total is', total)",
    "```python\nexit({'total': total, 'turns': 2})\n```",
]


@dataclass
class DemoReport:
    round_jobs: int
    results: dict[str, Any]
    stats: LoopStats
    seconds: float
    total_jobs: int
    by_agent: dict[str, dict[str, int]] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


#: Jobs besides the helpers: dispatcher, sleeper, messenger, analyst.
FIXED_JOBS = 4
#: Seconds between two frames of the live display.
FRAME_S = 0.25


@dataclass
class Progress:
    """What the live display shows: the round's jobs by status (index counts, less those
    the store held before the round), steps and steps/s, elapsed seconds."""

    baseline: list[int]
    began: float
    by_status: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    in_flight: int = 0
    elapsed: float = 0.0

    @classmethod
    def start(cls) -> Progress:
        return cls(_status_counts(), time.perf_counter())

    def update(self) -> Progress:
        now = _status_counts()
        self.by_status = {name: max(now[i] - self.baseline[i], 0)
                          for i, name in enumerate(STATUS_NAMES)}
        stats = last_stats()
        self.steps = 0 if stats is None else stats.steps_done
        self.in_flight = 0 if stats is None else stats.in_flight
        self.elapsed = time.perf_counter() - self.began
        return self

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.elapsed, 1e-9)


def _status_counts() -> list[int]:
    return [len(db0.find(Job, status_value(i))) for i in range(len(STATUS_NAMES))]


def _agent(cls: type, role: str, prompt: str, warmup: str | None = None) -> Any:
    for existing in db0.find(cls):
        if existing.role == role and type(existing) is cls:
            return existing
    agent = cls(role, prompt)
    if warmup is not None:
        agent.update_warmup_def(warmup)
    return agent


async def _run(helpers: int, concurrency: int,
               watch: Callable[[Progress], None] | None = None) -> DemoReport:
    add_provider(OFFLINE_PROVIDER, ScriptedProvider(ANALYST_REPLIES))
    api = StatekClientAPI()
    helper = _agent(SupervisedAgent, "demo-helper", "You square numbers.", "exit(n * n)")
    dispatcher = _agent(Agent, "demo-dispatcher", "You split work.")
    sleeper = _agent(Agent, "demo-sleeper", "You wait.")
    messenger = _agent(Agent, "demo-messenger", "You wait for mail.")
    analyst = _agent(Agent, "demo-analyst", "You analyse with Python.")
    jobs = {
        "dispatcher": api.submit_new_job(dispatcher, {"helper": helper, "helpers": helpers},
                                         warmup_code=DISPATCH),
        "sleeper": api.submit_new_job(sleeper, warmup_code=(
            "import time\nstarted = time.time()\nwoke = sleep(0.2).value\n"
            "exit(round(time.time() - started, 3))")),
        "messenger": api.submit_new_job(messenger, warmup_code="exit(wait_message().value)"),
        "analyst": api.submit_new_job(analyst),
    }
    api.push_message(jobs["messenger"], "hello from the demo")
    first = len(root_for().jobs) - len(jobs)  # this round's jobs are anchored from here
    before = len(db0.find(Job))
    began = time.perf_counter()
    defs = [AgentLoopDef(helper, None, lambda: 0)]
    progress = Progress.start()
    async with _watching(progress, watch):
        stats = await run_agentic_fleet(defs, [store.current_prefix()], concurrency,
                                        provider=OFFLINE_PROVIDER, auto_terminate=True)
    seconds = time.perf_counter() - began
    # plain copies: the report outlives the store, and dbzero objects die with it
    results = {name: (db0.load(job.exit_status), job.error) for name, job in jobs.items()}
    return DemoReport(len(db0.find(Job)) - before + len(jobs), results, stats, seconds,
                      len(db0.find(Job)), _round_by_agent(first),
                      dict(progress.update().by_status))


@contextlib.asynccontextmanager
async def _watching(progress: Progress,
                    watch: Callable[[Progress], None] | None) -> Any:
    """Call `watch` with fresh progress every FRAME_S while the block runs, and once after."""
    if watch is None:
        yield
        return

    async def frames() -> None:
        while True:
            watch(progress.update())
            await asyncio.sleep(FRAME_S)

    task = asyncio.create_task(frames())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watch(progress.update())


def _round_by_agent(first: int) -> dict[str, dict[str, int]]:
    """role -> jobs, done, failed, tokens in/out, over the jobs anchored from `first` on."""
    anchor = root_for().jobs
    rows: dict[str, dict[str, int]] = {}
    for index in range(first, len(anchor)):
        job = anchor[index]
        row = rows.setdefault(str(job.jobdef.agent.role), dict.fromkeys(
            ("jobs", "done", "failed", "tokens_in", "tokens_out"), 0))
        row["jobs"] += 1
        row["done"] += job.state == DONE
        row["failed"] += job.error is not None
        if job.chat is not None:
            row["tokens_in"] += job.input_tokens
            row["tokens_out"] += job.output_tokens
    return rows


def run_demo(helpers: int = 200, concurrency: int = 100,
             watch: Callable[[Progress], None] | None = None,
             dashboard_port: int | None = None,
             serving: Callable[[str], None] | None = None,
             finished: Callable[[DemoReport], None] | None = None) -> DemoReport:
    """Open the embedded store, run one round of the demo fleet, and close the store.

    `watch(progress)`: called every FRAME_S while the round runs. `dashboard_port` (0: one
    the OS picks): serve the HTTP API and dashboard, call `serving(dashboard url)`, and after
    the round (and `finished(report)`) keep serving until SIGINT or SIGTERM."""
    store.open_default_store()
    try:
        return asyncio.run(_main(helpers, concurrency, watch, dashboard_port, serving,
                                 finished))
    finally:
        store.close()


async def _main(helpers: int, concurrency: int, watch: Callable[[Progress], None] | None,
                dashboard_port: int | None, serving: Callable[[str], None] | None,
                finished: Callable[[DemoReport], None] | None) -> DemoReport:
    if dashboard_port is None:
        report = await _run(helpers, concurrency, watch)
        if finished is not None:
            finished(report)
        return report
    from statek.server import start_server

    server = await start_server(store.settings().model_copy(update={"http_port": dashboard_port}))
    try:
        if serving is not None:
            serving(server.url + "/dashboard")
        report = await _run(helpers, concurrency, watch)
        if finished is not None:
            finished(report)
        await _until_stopped()
        return report
    finally:
        await server.close()


async def _until_stopped() -> None:
    """Wait for SIGINT (Ctrl-C) or SIGTERM."""
    with stop_event() as stop:
        await stop.wait()


def describe(report: DemoReport) -> list[str]:
    s = report.stats
    lines = [f"ran {s.steps_done} steps of {report.round_jobs} jobs in {report.seconds:.2f} s "
             f"({s.steps_done / max(report.seconds, 1e-9):,.0f} steps/s), "
             f"max in flight {s.max_in_flight}, {s.commits} commits"]
    for name, (value, error) in report.results.items():
        lines.append(f"  {name:<10} -> {value!r}" + (f"  (error: {error})" if error else ""))
    lines.append(f"store now holds {report.total_jobs} jobs (all rounds)")
    if s.stranded:
        lines.append(f"  {s.stranded} job(s) remain suspended")
    return lines


def progress_table(progress: Progress) -> Any:
    """The live display's frame: the round's jobs by status, steps, steps/s, elapsed."""
    from rich.table import Table

    table = Table(title="statek demo", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name in STATUS_NAMES:
        table.add_row(f"jobs {name}", str(progress.by_status.get(name, 0)))
    table.add_row("steps", str(progress.steps))
    table.add_row("steps/s", f"{progress.steps_per_second:,.0f}")
    table.add_row("in flight", str(progress.in_flight))
    table.add_row("elapsed", f"{progress.elapsed:.1f} s")
    return table


def summary_table(report: DemoReport) -> Any:
    """The round by agent: jobs, done, failed, tokens."""
    from rich.table import Table

    table = Table(title=f"round summary ({report.round_jobs} jobs, {report.seconds:.2f} s)",
                  title_justify="left")
    for name in ("agent", "jobs", "done", "failed", "tokens in", "tokens out"):
        table.add_column(name, justify="left" if name == "agent" else "right")
    for role, row in sorted(report.by_agent.items()):
        table.add_row(role, *(str(row[k]) for k in ("jobs", "done", "failed", "tokens_in",
                                                      "tokens_out")))
    return table

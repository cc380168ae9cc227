"""The main job: a small fleet run end to end by a real worker, offline.

A dispatcher agent delegates work to helper jobs and waits for all of them, a timer job sleeps,
a messenger job waits for a pushed message, and an analyst job talks to the offline `scripted`
provider for two turns. The worker is told to use `scripted` (nothing falls back to it), so
the demo needs no network or key. Everything lives in the embedded store, so running it again
adds a new round beside the old one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import dbzero as db0

from statek import store
from statek.models.agent import Agent, SupervisedAgent
from statek.models.job import Job
from statek.providers import ScriptedProvider, add_provider
from statek.runtime.agentic import AgentLoopDef, run_agentic_fleet
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


def _agent(cls: type, role: str, prompt: str, warmup: str | None = None) -> Any:
    for existing in db0.find(cls):
        if existing.role == role and type(existing) is cls:
            return existing
    agent = cls(role, prompt)
    if warmup is not None:
        agent.update_warmup_def(warmup)
    return agent


async def _run(helpers: int, concurrency: int) -> DemoReport:
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
    before = len(db0.find(Job))
    began = time.perf_counter()
    defs = [AgentLoopDef(helper, None, lambda: 0)]
    stats = await run_agentic_fleet(defs, [store.current_prefix()], concurrency,
                                    provider=OFFLINE_PROVIDER, auto_terminate=True)
    seconds = time.perf_counter() - began
    # plain copies: the report outlives the store, and dbzero objects die with it
    results = {name: (db0.load(job.exit_status), job.error) for name, job in jobs.items()}
    return DemoReport(len(db0.find(Job)) - before + len(jobs), results, stats, seconds,
                      len(db0.find(Job)))


def run_demo(helpers: int = 200, concurrency: int = 100) -> DemoReport:
    """Open the embedded store, run one round of the demo fleet, and close the store."""
    store.open_default_store()
    try:
        return asyncio.run(_run(helpers, concurrency))
    finally:
        store.close()


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

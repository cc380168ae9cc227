"""start_statek / start_statek_async: prepare a worker process and run its loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import dbzero as db0

from statek import store
from statek.models.agent import Agent, SupervisedAgent
from statek.models.push_queue import StatekPushQueue
from statek.observability.logs import configure_logging
from statek.runtime.agentic import AgentLoopDef, run_agentic_fleet, run_agentic_loop
from statek.runtime.loop import forget_early_stop, last_stats, run_jobs_loop, stop_loops
from statek.runtime.os_signals import WorkerSignals
from statek.runtime.stats import LoopStats
from statek.settings import StatekSettings
from statek.statek_client_api import StatekClientAPI

__all__ = ["last_stats", "start_statek", "start_statek_async"]

log = logging.getLogger("statek.runner")


def _unique(items: Sequence[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = db0.uuid(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _apply_definitions(agents: list[Any], settings: StatekSettings) -> None:
    prompts = settings.prompt_defs
    warmups = (settings.warmup_defs()
               if settings.warmup_defs_dir is not None and settings.warmup_defs_dir.is_dir()
               else {})
    with store.transition():
        for agent in agents:
            if agent.role in prompts:
                agent.set_system_prompt(prompts[agent.role])
            if agent.role in warmups and isinstance(agent, SupervisedAgent):
                agent.update_warmup_def(warmups[agent.role])


def _no_external_tasks() -> int:
    """start_statek's agents take work from queued events (the loop drains those itself),
    not from an application task queue."""
    return 0


def _press(count: int) -> None:
    if count == 1:
        log.warning("stopping: in-flight steps get their grace period (again: abort)")
    else:
        log.warning("aborting in-flight steps")
    stop_loops(abort=count > 1)


async def start_statek_async(agents: Sequence[Agent] | None = None,
                             push_queues: Sequence[StatekPushQueue] | None = None,
                             settings: StatekSettings | None = None,
                             max_concurrency: int = 100,
                             provider: str | None = None,
                             *, auto_terminate: bool = False) -> LoopStats:
    """Prepare the worker (settings, client API, prompt and warmup files) and run the loop:
    `run_agentic_loop` for one active agent, `run_agentic_fleet` for several.

    With no dbzero prefix open, the embedded default store is opened. Returns the loop's
    counters when the loop returns (SIGINT/SIGTERM, if the application leaves them to statek,
    stop it gracefully). Cancelling it (or an `asyncio.timeout` around it) stops new steps,
    gives in-flight ones their grace period, commits, and raises `CancelledError` as asyncio
    code expects; `statek.runner.last_stats()` still has the counters then."""
    return await _run_worker(agents, push_queues, settings, max_concurrency, provider,
                             auto_terminate, WorkerSignals(), take_all_signals=False)


@contextlib.contextmanager
def _no_stop_left_behind() -> Iterator[None]:
    try:
        yield
    finally:
        forget_early_stop()


async def _run_worker(agents: Sequence[Agent] | None,
                      push_queues: Sequence[StatekPushQueue] | None,
                      settings: StatekSettings | None, max_concurrency: int,
                      provider: str | None, auto_terminate: bool, signals: WorkerSignals,
                      *, take_all_signals: bool) -> LoopStats:
    cfg = store.init(settings)
    configure_logging(cfg)  # before the first record ("worker ready"), not at the loop's start
    if not store.has_prefix():
        store.open_default_store()
    StatekClientAPI()
    active = _unique(list(agents) if agents is not None else list(db0.find(Agent)))
    queues = _unique(list(push_queues)) if push_queues else [StatekPushQueue()]
    prefixes = [q.prefix_name for q in queues]
    _apply_definitions(active, cfg)
    server = await _start_http(cfg)
    try:
        # handlers go first on leaving, so no press can set a stop after it was forgotten
        with _no_stop_left_behind(), signals.installed(_press, take_all=take_all_signals):
            log.info("worker ready: %d agent(s), queues %s, max_concurrency %d%s",
                     len(active), prefixes, max_concurrency,
                     f", http api on {server.url}" if server is not None else "")
            return await _run_loops(active, prefixes, max_concurrency, provider,
                                    auto_terminate)
    finally:
        if server is not None:
            await asyncio.shield(server.close())


async def _start_http(cfg: StatekSettings) -> Any:
    """The worker's HTTP API (statek.server) when `http_port` is set, on this loop."""
    if cfg.http_port is None:
        return None
    from statek.server import start_server

    return await start_server(cfg)


async def _run_loops(active: list[Any], prefixes: list[Any], max_concurrency: int,
                     provider: str | None, auto_terminate: bool) -> LoopStats:
    if len(active) == 1:
        return await run_agentic_loop(active[0], None, _no_external_tasks, prefixes,
                                      max_concurrency, provider, auto_terminate)
    if not active:
        return await run_jobs_loop(max_concurrency, provider, queue_prefixes=prefixes,
                                   auto_terminate=auto_terminate)
    defs = [AgentLoopDef(a, None, _no_external_tasks) for a in active]
    return await run_agentic_fleet(defs, prefixes, max_concurrency, provider, auto_terminate)


def event_loop_factory(settings: StatekSettings | None) -> Any:
    """The event loop a worker runs on: uvloop's when installed and `use_uvloop` is on
    (the `fast` extra), else None (asyncio's default). Benchmarks use it too, so their
    figures are a worker's."""
    cfg = settings if settings is not None else store.settings()
    if not cfg.use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def start_statek(agents: Sequence[Agent] | None = None,
                 push_queues: Sequence[StatekPushQueue] | None = None,
                 settings: StatekSettings | None = None, max_concurrency: int = 100,
                 provider: str | None = None, *, auto_terminate: bool = False) -> LoopStats:
    """Blocking wrapper of `start_statek_async` (on uvloop when installed and enabled).

    It owns the process's SIGINT/SIGTERM from its first line until it returns: a signal
    during start-up stops the worker as soon as its loop runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("start_statek() cannot run inside an active event loop; "
                           "use `await start_statek_async(...)` from async code")
    signals = WorkerSignals()
    with signals.during_startup(), \
            asyncio.Runner(loop_factory=event_loop_factory(settings)) as runner:
        return runner.run(_run_worker(agents, push_queues, settings, max_concurrency, provider,
                                      auto_terminate, signals, take_all_signals=True))

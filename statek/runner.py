"""start_statek / start_statek_async: prepare a worker process and run its loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import dbzero as db0

from statek import store
from statek.models.agent import Agent, SupervisedAgent
from statek.models.push_queue import StatekPushQueue
from statek.runtime.agentic import AgentLoopDef, run_agentic_fleet, run_agentic_loop
from statek.runtime.loop import active_loops
from statek.runtime.stats import LoopStats
from statek.settings import StatekSettings
from statek.statek_client_api import StatekClientAPI

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


def _install_signal_handlers() -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    presses = {"count": 0}

    def on_signal() -> None:
        presses["count"] += 1
        for worker in active_loops():
            if presses["count"] == 1:
                log.warning("stopping: in-flight steps get their grace period (again: abort)")
                worker.request_stop()
            else:
                log.warning("aborting in-flight steps")
                worker.abort()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    return installed


async def start_statek_async(agents: Sequence[Agent] | None = None,
                             push_queues: Sequence[StatekPushQueue] | None = None,
                             settings: StatekSettings | None = None,
                             max_concurrency: int = 100,
                             provider: str | None = None,
                             *, auto_terminate: bool = False) -> LoopStats:
    """Prepare the worker (settings, client API, prompt and warmup files) and run the loop:
    `run_agentic_loop` for one active agent, `run_agentic_fleet` for several.

    With no dbzero prefix open, the embedded default store is opened. Returns when the loop
    returns (SIGINT/SIGTERM or cancellation stop it gracefully)."""
    cfg = store.init(settings)
    if not store.has_prefix():
        store.open_default_store()
    StatekClientAPI()
    active = _unique(list(agents) if agents is not None else list(db0.find(Agent)))
    queues = _unique(list(push_queues)) if push_queues else [StatekPushQueue()]
    prefixes = [q.prefix_name for q in queues]
    _apply_definitions(active, cfg)
    installed = _install_signal_handlers()
    try:
        if len(active) == 1:
            agent = active[0]
            return await run_agentic_loop(agent, None, _no_external_tasks, prefixes,
                                          max_concurrency, provider, auto_terminate)
        if not active:
            from statek.runtime.loop import run_jobs_loop

            return await run_jobs_loop(max_concurrency, provider, queue_prefixes=prefixes,
                                       auto_terminate=auto_terminate)
        defs = [AgentLoopDef(a, None, _no_external_tasks) for a in active]
        return await run_agentic_fleet(defs, prefixes, max_concurrency, provider,
                                       auto_terminate)
    except asyncio.CancelledError:
        log.info("worker cancelled; in-flight steps finished and state committed")
        return LoopStats()
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)


def _loop_factory(settings: StatekSettings | None) -> Any:
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
    """Blocking wrapper of `start_statek_async` (on uvloop when installed and enabled)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("start_statek() cannot run inside an active event loop; "
                           "use `await start_statek_async(...)` from async code")
    with asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
        return runner.run(start_statek_async(agents, push_queues, settings, max_concurrency,
                                             provider, auto_terminate=auto_terminate))

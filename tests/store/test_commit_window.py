"""A worker loop stretches its group-commit window when commits are costly, within the
settings' bounds (commit_interval .. commit_interval_max)."""

from __future__ import annotations

import time

import dbzero as db0
import pytest

import statek
from statek.executors.utils import run_jobs_loop
from statek.runtime import loop as loop_module
from statek.runtime.stats import LoopStats

JOBS = 20


def _slow_commits(monkeypatch: pytest.MonkeyPatch, cost_s: float) -> None:
    """Make every commit of the loop take at least `cost_s` of CPU (a busy wait stands in for
    a commit holding many live objects; CPU time, so a loaded machine cannot shorten it)."""
    real_commit = db0.commit

    def slow_commit() -> None:
        began = time.thread_time()
        while time.thread_time() - began < cost_s:
            pass
        real_commit()

    monkeypatch.setattr(loop_module.db0, "commit", slow_commit)


async def _run_jobs(api: statek.StatekClientAPI, agent: statek.Agent) -> LoopStats:
    for i in range(JOBS):
        api.submit_new_job(agent, {"i": i}, warmup_code="exit(i)")
    return await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)


async def test_costly_commits_stretch_the_window(api: statek.StatekClientAPI,
                                                 agent: statek.Agent,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_commits(monkeypatch, 0.010)  # >= 10 ms each: a 200 ms window keeps them at 5%
    stats = await _run_jobs(api, agent)
    assert stats.jobs_completed == JOBS and stats.commits >= 1
    assert 0.2 <= stats.commit_window <= 0.25  # the default commit_interval_max


async def test_cheap_commits_keep_the_configured_window(api: statek.StatekClientAPI,
                                                        agent: statek.Agent) -> None:
    stats = await _run_jobs(api, agent)
    assert stats.jobs_completed == JOBS and stats.commits >= 1
    assert stats.commit_window == pytest.approx(0.05)  # commits far below 2.5 ms of CPU here


async def test_a_fixed_window_is_kept(api: statek.StatekClientAPI, agent: statek.Agent,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_COMMIT_INTERVAL_MAX", "0.05")
    from statek.settings import reset_settings_cache

    reset_settings_cache()
    statek.init()
    _slow_commits(monkeypatch, 0.010)
    stats = await _run_jobs(api, agent)
    assert stats.jobs_completed == JOBS
    assert stats.commit_window == pytest.approx(0.05)

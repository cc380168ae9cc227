"""The process-isolated executor: job code never runs in the worker, runaways and crashes
cost only their own job, executors are limited by the OS, and the wire refuses classes."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

import statek
from statek.executors.utils import run_job_step
from statek.isolation import pool as pool_module
from statek.isolation.protocol import ProtocolError, Ref, dumps, loads_untrusted
from statek.isolation.runner import pool_config
from statek.models.status import JobStatus
from statek.observability.logs import JobContextFilter, current_step, step_context
from statek.settings import reset_settings_cache


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[pool_module.ExecutorPool]:
    """Process mode with one executor and a 2 s code budget per step (set before the store)."""
    monkeypatch.setenv("STATEK_ISOLATION", "process")
    monkeypatch.setenv("STATEK_EXECUTOR_PROCESSES", "1")
    monkeypatch.setenv("STATEK_STEP_CODE_BUDGET", "2")
    reset_settings_cache()
    pool = pool_module.pool_for(pool_config())
    pool.prestart()
    yield pool


@pytest.fixture
def unrestricted(isolated: pool_module.ExecutorPool, statek_store: str) -> Iterator[None]:
    statek.init(restricted=False)
    yield
    statek.init()


def executor_pid(pool: pool_module.ExecutorPool) -> int:
    (pid,) = pool.pids()
    assert pid is not None
    return pid


async def test_job_code_runs_in_the_executor_not_the_worker(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent, unrestricted: None) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="import os\nexit(os.getpid())")
    assert await run_job_step(job) is True
    assert job.exit_status == executor_pid(isolated) != os.getpid()


async def test_a_runaway_is_killed_and_replaced_and_the_fleet_goes_on(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent) -> None:
    before = executor_pid(isolated)
    runaway = api.submit_new_job(agent, {}, warmup_code="while True:\n    pass")
    assert await run_job_step(runaway) is True
    assert runaway.status == JobStatus.DONE
    assert "step_code_budget" in (runaway.error or ""), runaway.error
    assert isolated.pids() != [before]  # a new executor
    fine = api.submit_new_job(agent, {"n": 2}, warmup_code="exit(n * 21)")
    assert await run_job_step(fine) is True and fine.exit_status == 42


async def test_the_kill_of_a_runaway_is_logged_with_its_own_job(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent, caplog: pytest.LogCaptureFixture) -> None:
    """The second runaway's run starts when the executor that replaced the first one is
    ready, in a callback carrying the first one's step context: its kill was logged as the
    first job's (found by a new user, who went looking for the wrong job)."""
    caplog.handler.addFilter(JobContextFilter())
    first, second = (api.submit_new_job(agent, {}, warmup_code="while True:\n    pass")
                     for _ in range(2))
    with caplog.at_level(logging.WARNING, logger="statek.isolation"):
        for number, job in enumerate((first, second)):  # the log context a worker's step has
            token = current_step.set(step_context(job.uuid, number))
            try:
                assert await run_job_step(job) is True
            finally:
                current_step.reset(token)
    kills = [r for r in caplog.records if r.getMessage().endswith("; starting another")]
    assert [getattr(r, "job_id", "?") for r in kills] == [first.uuid, second.uuid]


async def test_a_catastrophic_regex_is_killed_too(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code=(
        "import re\nre.match('(a+)+$', 'a' * 40 + 'b')\nexit('matched')"))
    assert await run_job_step(job) is True
    assert "step_code_budget" in (job.error or "") and job.exit_status is None


async def test_a_crashing_executor_fails_only_its_job(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent, unrestricted: None) -> None:
    crash = api.submit_new_job(agent, {}, warmup_code="import ctypes\nctypes.string_at(0)")
    assert await run_job_step(crash) is True
    assert "crashed (SIGSEGV)" in (crash.error or ""), crash.error
    after = api.submit_new_job(agent, {}, warmup_code="exit('alive')")
    assert await run_job_step(after) is True and after.exit_status == "alive"


@pytest.mark.parametrize(("source", "error"), [
    ("import socket\nsocket.socket()", "PermissionError"),
    ("import os\nos.fork()", "PermissionError"),
    ("import subprocess\nsubprocess.run(['true'])", "PermissionError"),
    ("open('{path}', 'w')", "PermissionError"),
    ("x = bytearray(2 * 1024 ** 3)", "MemoryError"),
])
async def test_os_limits_hold_even_without_the_sandbox(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI, agent: statek.Agent,
        unrestricted: None, tmp_path: Path, source: str, error: str) -> None:
    if "seccomp" not in isolated.protections and error == "PermissionError":
        pytest.skip(f"no seccomp filter here: {isolated.protections}")
    target = tmp_path / "written"
    job = api.submit_new_job(agent, {}, warmup_code=source.format(path=target) + "\nexit(1)")
    assert await run_job_step(job) is True
    assert job.exit_status is None and error in (job.error or ""), job.error
    assert not target.exists()


async def test_stored_objects_cross_as_tokens_the_job_was_given(
        isolated: pool_module.ExecutorPool, api: statek.StatekClientAPI,
        agent: statek.Agent) -> None:
    helper = statek.SupervisedAgent("helper", "")
    helper.update_warmup_def("exit(k + 1)")
    parent = api.submit_new_job(agent, {"helper": helper},
                                warmup_code="f = delegate(helper, k=1)\nprint(f)\nexit(f.value)")
    assert await run_job_step(parent) is False
    assert parent.console == ["<Future job pending>\n"]
    (kid,) = _children(parent)
    assert await run_job_step(kid) is True
    assert await run_job_step(parent) is True and parent.exit_status == 2


def _children(parent: object) -> list[object]:
    import dbzero as db0

    return [job for job in db0.find(statek.Job) if job.parent == parent]


def test_the_wire_refuses_classes_from_an_executor() -> None:
    frame = pickle.dumps(os.system, protocol=5)
    with pytest.raises(ProtocolError, match="not plain data"):
        loads_untrusted(frame)
    ok = loads_untrusted(dumps({"a": [1, Ref("X", "future")], "b": {1.5}})[4:])
    assert ok == {"a": [1, Ref("X", "future")], "b": {1.5}}


async def test_a_forged_token_is_refused(isolated: pool_module.ExecutorPool,
                                         api: statek.StatekClientAPI,
                                         agent: statek.Agent) -> None:
    """An executor can only name stored objects given to that job."""
    other = api.submit_new_job(agent, {"secret": "s"})
    from statek.isolation.runner import RefTable

    table = RefTable()
    with pytest.raises(ProtocolError, match="never given"):
        table.from_child(Ref(other.uuid, "job"))

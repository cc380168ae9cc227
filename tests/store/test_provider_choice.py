"""No silent fake: the offline provider answers only when chosen; a job whose MODEL resolves
to no provider, or to a hosted API with no key, fails at once with an error saying what to set,
and the worker carries on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statek
from statek.executors.utils import run_job_step, run_jobs_loop
from statek.models.status import JobStatus
from statek.providers import ScriptedProvider, add_provider, remove_provider


@pytest.fixture
def no_default(statek_store: str) -> Iterator[None]:
    """Settings as a user gets them: no default provider, no API keys, hosted base URLs."""
    statek.init(statek.get_statek_settings(
        default_provider=None, openai_api_key=None, anthropic_api_key=None,
        openai_base_url="https://api.openai.com/v1",
        anthropic_base_url="https://api.anthropic.com"))
    yield
    statek.init()


def _errors(job: Any) -> list[str]:
    return [e["message"] for e in job.chat_log if e["kind"] == "error"]


@pytest.mark.parametrize(("job_params", "named"), [
    ({"model": "gpt-4o-mini"}, "MODEL 'gpt-4o-mini'"),
    ({"model": "vendor/some-model"}, "MODEL 'vendor/some-model'"),
    ({}, "neither MODEL nor PROVIDER"),
])
async def test_unresolved_model_fails_the_job_at_once(api: statek.StatekClientAPI,
                                                      agent: statek.Agent, no_default: None,
                                                      job_params: dict[str, Any],
                                                      named: str) -> None:
    job = api.submit_new_job(agent, {}, **job_params)
    assert await run_job_step(job) is True  # one step: not retried with backoff
    assert job.status == JobStatus.DONE
    error = job.error or ""
    assert named in error and "STATEK_DEFAULT_PROVIDER" in error and "provider/model" in error
    assert "failures in a row" not in error
    assert job.provider_failures == 0 and job.turns == 0
    assert _errors(job) == [error]


@pytest.mark.parametrize(("model", "setting"), [
    ("openai/gpt-4o-mini", "STATEK_OPENAI_API_KEY"),
    ("anthropic/claude-sonnet-4-5", "STATEK_ANTHROPIC_API_KEY"),
])
async def test_hosted_provider_without_key_fails_the_job_at_once(
        api: statek.StatekClientAPI, agent: statek.Agent, no_default: None, model: str,
        setting: str) -> None:
    job = api.submit_new_job(agent, {}, model=model)
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE
    assert setting in (job.error or "") and "no API key" in (job.error or "")
    assert job.provider_failures == 0 and len(_errors(job)) == 1


@pytest.mark.parametrize(("job_params", "runner_default"), [
    ({"model": "scripted/any-model"}, None),
    ({"provider": "scripted"}, None),
    ({"model": "gpt-4o-mini"}, "scripted"),
    ({}, "scripted"),
])
async def test_offline_provider_answers_when_chosen(api: statek.StatekClientAPI,
                                                    agent: statek.Agent, no_default: None,
                                                    job_params: dict[str, Any],
                                                    runner_default: str | None) -> None:
    chosen = ScriptedProvider(["exit('offline')"], record=True)
    add_provider("scripted", chosen)
    try:
        job = api.submit_new_job(agent, {}, **job_params)
        assert await run_job_step(job, runner_default) is False
        assert await run_job_step(job, runner_default) is True
    finally:
        remove_provider("scripted")
    assert job.exit_status == "offline" and job.error is None
    assert chosen.calls == 1


async def test_settings_default_chooses_the_offline_provider(api: statek.StatekClientAPI,
                                                             agent: statek.Agent,
                                                             no_default: None) -> None:
    statek.init(statek.get_statek_settings(default_provider="scripted"))
    job = api.submit_new_job(agent, {}, model="gpt-4o-mini")
    assert await run_job_step(job) is False
    assert await run_job_step(job) is True
    assert job.exit_status == "ok"  # the built-in offline provider's reply


async def test_worker_records_the_error_and_carries_on(api: statek.StatekClientAPI,
                                                       agent: statek.Agent,
                                                       no_default: None) -> None:
    """Misconfigured jobs end with their error inside a real worker loop; the others run."""
    unresolved = api.submit_new_job(agent, {}, model="gpt-4o-mini")
    keyless = api.submit_new_job(agent, {}, model="openai/gpt-4o-mini")
    offline = [api.submit_new_job(agent, {}, model="scripted/m") for _ in range(3)]
    stats = await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert stats.jobs_completed == 5 and stats.stranded == 0
    assert "MODEL 'gpt-4o-mini'" in (unresolved.error or "")
    assert "STATEK_OPENAI_API_KEY" in (keyless.error or "")
    assert [len(_errors(j)) for j in (unresolved, keyless)] == [1, 1]
    assert [(j.exit_status, j.error) for j in offline] == [("ok", None)] * 3


# --- the command line: `statek worker` as a user runs it ------------------------------------

SETUP = textwrap.dedent("""
    import sys, statek
    statek.open_default_store()
    agent = statek.Agent("cli-agent")
    api = statek.StatekClientAPI()
    api.submit_new_job(agent, {}, model="gpt-4o-mini")
    api.submit_new_job(agent, {}, model="openai/gpt-4o-mini")
    api.submit_new_job(agent, {})
    statek.close()
""")

REPORT = textwrap.dedent("""
    import statek, dbzero as db0
    statek.open_default_store()
    for job in sorted(db0.find(statek.Job), key=lambda j: str(j.jobdef.metadata.get("MODEL"))):
        print(str(job.status), repr(job.exit_status), job.error)
    statek.close()
""")


def _env(data_dir: Path) -> dict[str, str]:
    """The user's environment: no STATEK_* settings but the data directory."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STATEK_")}
    env["STATEK_DATA_DIR"] = str(data_dir)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def cli_store(tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = _env(tmp_path / "data")
    done = _run(["-c", SETUP], env, tmp_path)
    assert done.returncode == 0, done.stderr
    return env, tmp_path


def _report(env: dict[str, str], cwd: Path) -> list[str]:
    done = _run(["-c", REPORT], env, cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_cli_worker_fails_unconfigured_jobs(cli_store: tuple[dict[str, str], Path]) -> None:
    env, cwd = cli_store
    done = _run(["-m", "statek", "worker", "--until-idle"], env, cwd)
    assert done.returncode == 0, done.stderr
    assert "3 jobs done" in done.stdout
    no_model, plain, keyless = _report(env, cwd)
    assert no_model.startswith("DONE None ") and "neither MODEL nor PROVIDER" in no_model
    assert plain.startswith("DONE None ") and "MODEL 'gpt-4o-mini'" in plain
    assert keyless.startswith("DONE None ") and "STATEK_OPENAI_API_KEY" in keyless


def test_cli_worker_offline_answers_every_job(cli_store: tuple[dict[str, str], Path]) -> None:
    env, cwd = cli_store
    done = _run(["-m", "statek", "worker", "--offline", "--until-idle"], env, cwd)
    assert done.returncode == 0, done.stderr
    assert "offline" in done.stdout and "3 jobs done" in done.stdout
    assert _report(env, cwd) == ["DONE 'ok' None"] * 3


def test_cli_offline_refuses_another_provider(tmp_path: Path) -> None:
    done = _run(["-m", "statek", "worker", "--offline", "--provider", "openai"],
                _env(tmp_path / "data"), tmp_path)
    assert done.returncode == 2
    assert "--offline" in done.stderr and "--provider openai" in done.stderr

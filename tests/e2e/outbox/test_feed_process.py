"""Feeding a real worker process: the CLI (a new producer process per command, picked up
without a restart) and `open_default_store(when_held="feed")` with StatekClientAPI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

FEEDER = textwrap.dedent("""
    import statek
    from statek.server.views import find_agent
    statek.open_default_store(when_held="feed")
    api = statek.StatekClientAPI()
    assert api.outbox is not None, "the worker holds the store: writes go to the outbox"
    job = api.submit_new_job(find_agent("echo"), {"n": 41}, warmup_code="exit(n + 1)")
    print(job.uuid, job.status, flush=True)
    waiter = api.submit_new_job(find_agent("echo"), warmup_code="exit(wait_message().value)")
    api.push_message(waiter, "hello")
    import time
    deadline = time.monotonic() + 120  # a failure bound: the worker applies it in ms
    while time.monotonic() < deadline:
        done = [j for j in (job.applied(), waiter.applied()) if j is not None and j.is_done]
        if len(done) == 2:
            print("exits", done[0].exit_status, done[1].exit_status, flush=True)
            break
        time.sleep(0.02)
    statek.close()
""")


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_")}
    env["STATEK_DATA_DIR"] = str(data)
    return env


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-c", "import statek\nstatek.open_default_store()\n"
                           "statek.Agent('echo')\nstatek.close()"], env=_env(data),
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen([sys.executable, "-m", "statek", "worker", "--offline"],
                            env=_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "worker ready" in line:
            break
    else:
        pytest.fail("the worker ended before it was ready")
    yield data
    proc.terminate()
    proc.wait(timeout=120)


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statek", *args], env=_env(data),
                          capture_output=True, text=True, timeout=120)


def test_client_api_feeds_a_running_worker(worker: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FEEDER], env=_env(worker),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, exits = done.stdout.splitlines()
    assert first.startswith("ob") and first.endswith(" PENDING")
    assert exits == "exits 42 hello"


def test_cli_writes_reach_a_running_worker(worker: Path) -> None:
    submitted = _cli(worker, "submit", "echo", "--var", "n=1")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    assert job.startswith("ob")
    pushed = _cli(worker, "push", job, '"hi"', "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout == f"queued message for {job} through the worker's outbox\n"
    cancelled = _cli(worker, "cancel", job)  # the echo job may have finished already
    if cancelled.returncode == 0:
        assert f"cancel of {job} queued for the worker" in cancelled.stdout
    else:
        assert cancelled.returncode == 1
        assert f"{job} had already finished: nothing to cancel" in cancelled.stderr
    unknown = _cli(worker, "cancel", "NOSUCHJOB")
    assert unknown.returncode == 1 and "no job with uuid 'NOSUCHJOB'" in unknown.stderr


def test_show_finds_a_job_by_the_id_submit_printed(worker: Path) -> None:
    """The id `statek submit` prints while a worker runs is an outbox id: `show` finds the
    job by it once the worker applied it (a new user's first try after submitting)."""
    import time

    submitted = _cli(worker, "submit", "echo", "--var", "n=1")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    deadline = time.monotonic() + 120  # a failure bound: the worker applies it in ms
    while True:
        shown = _cli(worker, "show", job)
        if shown.returncode == 0:
            break
        assert "no job with uuid" in shown.stderr and "Traceback" not in shown.stderr
        assert time.monotonic() < deadline, shown.stderr
    assert "status" in shown.stdout

"""Budgets through a real worker process: BudgetExhausted in the job JSON, the listing, the
remote client and the CLI; an operator raises the budget over HTTP (`statek.connect`) or with
`statek budget` on the stopped worker's store, and the job completes (after a restart)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import statek
from statek.remote import RemoteBudgetError, StatekRemoteClient
from tests.e2e.service.conftest import Worker, clean_env, prepare_store

WAIT_BOUND_S = 120  # failure bound only


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=WAIT_BOUND_S)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _held_job(client: StatekRemoteClient) -> str:
    """A job whose one-token budget runs out with its first reply; returns once it is held."""
    job = client.submit_new_job("helper", {"x": 1}, budget={"tokens": 1})
    for event in client.events(job):
        if event.kind == "status":
            assert event.data["status"] != "DONE", event.data
            if event.data["status"] == "SUSPENDED":
                return job.uuid
    raise AssertionError("the event stream ended")


def test_held_job_is_visible_and_resumes_when_raised(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prepare_store(data_dir)
    worker = Worker(data_dir)
    try:
        with statek.connect(worker.url) as client:
            first = _held_job(client)
            data = client.get_job(first).data
            held = data["budget_exhausted"]
            assert held["state"] == "BudgetExhausted" and held["budget"] == "tokens"
            assert held["limit"] == 1 and held["spent"] > 1 and held["owner"] == first
            assert data["budget"]["limits"]["tokens"] == 1
            rows = {r["uuid"]: r for r in client.list_jobs(status="SUSPENDED")["jobs"]}
            assert rows[first]["budget_exhausted"]["budget"] == "tokens"
            assert client.get_budget(first)["held"]["budget"] == "tokens"

            listing = _cli(data_dir, "jobs", "--url", worker.url)
            assert f"{first}" in listing and "SUSPENDED (BudgetExhausted: tokens)" in listing
            shown = _cli(data_dir, "show", first, "--url", worker.url)
            assert "BudgetExhausted: tokens" in shown and f"statek budget {first}" in shown

            with pytest.raises(RemoteBudgetError, match="has no limit to raise") as refused:
                client.raise_budget(first, cost=1.0)
            assert refused.value.status == 422
            with pytest.raises(ValueError, match="budget steps must be an int"):
                client.set_budget(first, steps=1.5)  # type: ignore[arg-type]

            raised = client.raise_budget(first, tokens=100_000)
            assert raised["limits"]["tokens"] == 100_001 and raised["exhausted"] is None
            done = client.wait(first, timeout=WAIT_BOUND_S)
            assert done.exit_status == "ok" and done.budget_exhausted is None

            second = _held_job(client)
    finally:
        worker.stop()

    # the worker is gone: the CLI works on the store itself
    listing = _cli(data_dir, "jobs")
    assert "SUSPENDED (BudgetExhausted: tokens)" in listing
    assert "BudgetExhausted: tokens" in _cli(data_dir, "show", second)
    out = _cli(data_dir, "budget", second, "--tokens", "100000")
    assert out.startswith(f"budget of job {second} (suspend): tokens ")
    assert "BudgetExhausted" not in out

    restarted = Worker(data_dir)
    try:
        with statek.connect(restarted.url) as client:
            assert client.wait(second, timeout=WAIT_BOUND_S).exit_status == "ok"
    finally:
        restarted.stop()

"""A store holding a demo fleet plus two dashboard agents, and a worker serving it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.service.conftest import Worker, clean_env

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
STREAM_BOUND_S = 120.0  # failure bound only

#: Console and chat text a hostile job controls: must reach every page as text.
HOSTILE = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> & <b>b</b>"
WAITER_CODE = f"print({HOSTILE!r})\nexit(wait_message().value)"
CHATTY_CODE = f"print({HOSTILE!r})"
PREPARE = f"""
import statek
statek.open_default_store()
waiter = statek.SupervisedAgent("dash-waiter", metadata={{"MODEL": "scripted/any"}})
waiter.update_warmup_def({WAITER_CODE!r})
chatty = statek.SupervisedAgent("dash-chatty", metadata={{"MODEL": "scripted/any"}})
chatty.update_warmup_def({CHATTY_CODE!r})
square = statek.SupervisedAgent("dash-square", metadata={{"MODEL": "scripted/any"}})
square.update_warmup_def("exit(n * n)")
statek.commit_all()
statek.close()
"""


def make_fleet(data_dir: Path) -> None:
    """`statek demo --jobs 12` (a finished round: dispatcher, helpers, analyst...) and the
    dashboard agents."""
    env = clean_env(data_dir)
    env.pop("STATEK_DEFAULT_PROVIDER")
    done = subprocess.run([sys.executable, "-m", "statek", "demo", "--jobs", "12"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run([sys.executable, "-c", PREPARE], env=clean_env(data_dir), check=True,
                   timeout=120, capture_output=True)


@pytest.fixture(scope="package")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard") / "data"
    make_fleet(folder)
    return folder


@pytest.fixture(scope="package")
def worker(fleet_dir: Path) -> Iterator[Worker]:
    running = Worker(fleet_dir)
    try:
        yield running
    finally:
        running.stop()


TOKEN = "dash-secret-token"


@pytest.fixture(scope="package")
def token_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker whose server has a token (its own store: one worker per store)."""
    folder = tmp_path_factory.mktemp("token") / "data"
    make_fleet(folder)
    running = Worker(folder, STATEK_HTTP_TOKEN=TOKEN)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=60) as client:
        yield client


def submit(http: httpx.Client, agent: str) -> str:
    answer = http.post("/v1/jobs", json={"agent": agent})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job"])


def wait_status(http: httpx.Client, job: str, wanted: str) -> None:
    """Follow the job's event stream until it reports `wanted`."""
    with http.stream("GET", f"/v1/jobs/{job}/events") as response:
        assert response.status_code == 200, response.read()
        until_status(response, job, wanted)


def until_status(response: httpx.Response, job: str, wanted: str) -> None:
    """Read an open event stream until it reports `job` as `wanted`."""
    deadline = time.monotonic() + STREAM_BOUND_S
    kind = ""
    for line in response.iter_lines():
        assert time.monotonic() < deadline, f"{job} never became {wanted}"
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "status":
            data: dict[str, Any] = json.loads(line[6:])
            if data["job"] == job and data["status"] == wanted:
                return
    raise AssertionError(f"the stream ended before {job} became {wanted}")


def jobs_of(http: httpx.Client, agent: str) -> list[dict[str, Any]]:
    answer = http.get("/v1/jobs", params={"agent": agent, "limit": 1000})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["jobs"])

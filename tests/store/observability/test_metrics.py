"""/metrics of a real worker process (`statek worker --offline --http-port 0`) that ran jobs,
read with the Prometheus text parser."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from statek.observability.recorder import Histogram
from tests.e2e.service.conftest import Worker, clean_env, prepare_store

WAITER = """
import statek
statek.open_default_store()
waiter = statek.SupervisedAgent("waiter", metadata={"MODEL": "scripted/any"})
waiter.update_warmup_def("m = wait_message().value\\nexit(m)")
statek.commit_all()
statek.close()
"""

JOBS = 12
BOUND_S = 120.0  # failure bound only


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("metrics") / "data"
    prepare_store(folder)
    subprocess.run([sys.executable, "-c", WAITER], env=clean_env(folder), check=True,
                   timeout=120, capture_output=True)
    running = Worker(folder)
    try:
        yield running
    finally:
        running.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def wait_done(http: httpx.Client, jobs: list[str]) -> None:
    """Until every job is DONE (a failure bound, not a pause: it returns as soon as they are)."""
    deadline = time.monotonic() + BOUND_S
    pending = set(jobs)
    while pending:
        assert time.monotonic() < deadline, f"jobs not done: {pending}"
        pending = {j for j in pending if http.get(f"/v1/jobs/{j}").json()["status"] != "DONE"}


def test_scrape_after_jobs(worker: Worker) -> None:
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        answer = http.post("/v1/jobs/batch", json={"agent": "helper",
                                                  "vars_batch": [{"i": i} for i in range(JOBS)]})
        assert answer.status_code == 201, answer.text
        wait_done(http, [str(j) for j in answer.json()["jobs"]])
        # DONE shows before the loop's group commit: wait for that commit (bounded)
        deadline = time.monotonic() + BOUND_S
        while True:
            page = http.get("/metrics")
            assert page.status_code == 200
            if samples(page.text).get(("statek_commit_group_size_sum", ()), 0.0) >= JOBS:
                break
            assert time.monotonic() < deadline, "the jobs' steps were never committed"
        assert page.headers["content-type"].startswith("text/plain")
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
    found = samples(page.text)
    assert value(found, "statek_loop_running") == 1
    # each job: a step asking the model, then a step running its reply's exit('ok')
    assert value(found, "statek_steps_finished_total", agent="helper",
                 outcome="completed") == JOBS
    assert value(found, "statek_steps_started_total", agent="helper") >= 2 * JOBS
    assert value(found, "statek_step_duration_seconds_count", agent="helper") >= 2 * JOBS
    assert value(found, "statek_jobs_finished_total", outcome="ok") == JOBS
    assert value(found, "statek_model_calls_total", provider="scripted", model="any",
                 outcome="ok") == JOBS
    assert value(found, "statek_model_call_duration_seconds_count", provider="scripted",
                 model="any") == JOBS
    assert value(found, "statek_model_tokens_total", provider="scripted", model="any",
                 direction="input") > 0
    assert value(found, "statek_model_tokens_total", provider="scripted", model="any",
                 direction="output") > 0
    assert value(found, "statek_commit_duration_seconds_count") >= 1
    assert value(found, "statek_commit_group_size_sum") >= JOBS
    # the worker's defaults: a window between commit_interval and commit_interval_max
    assert 0.05 <= value(found, "statek_commit_window_seconds") <= 0.25
    assert value(found, "statek_loop_iteration_seconds_count") >= 1
    assert value(found, "statek_loop_iterations_total") >= 1
    for state in ("ready", "running", "waiting", "timer"):
        assert value(found, "statek_jobs", state=state) == 0  # all done
    for wake in ("job", "message", "time"):
        assert value(found, "statek_suspended_jobs", wake=wake) == 0
    assert value(found, "statek_ready_queue_depth") == 0
    assert value(found, "statek_steps_in_flight") == 0
    assert ("statek_queue_depth", (("kind", "messages"), ("prefix", "statek"))) in found
    assert ("statek_event_loop_lag_last_seconds", ()) in found
    assert value(found, "process_resident_memory_bytes") > 0


def wait_status(http: httpx.Client, job: str, status: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while http.get(f"/v1/jobs/{job}").json()["status"] != status:
        assert time.monotonic() < deadline, f"job {job} never {status}"


def test_suspended_jobs_show_by_wake_kind(worker: Worker) -> None:
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        answer = http.post("/v1/jobs", json={"agent": "waiter"})
        assert answer.status_code == 201, answer.text
        job = str(answer.json()["job"])
        wait_status(http, job, "SUSPENDED")
        found = samples(http.get("/metrics").text)
        assert value(found, "statek_suspended_jobs", wake="message") == 1
        assert value(found, "statek_jobs", state="waiting") == 1
        sent = http.post(f"/v1/jobs/{job}/messages", json={"message": "hi"})
        assert sent.status_code in (200, 201, 202), sent.text
        wait_status(http, job, "DONE")
        found = samples(http.get("/metrics").text)
        assert value(found, "statek_suspended_jobs", wake="message") == 0
        assert value(found, "statek_steps_finished_total", agent="waiter",
                     outcome="suspended") == 1
        assert value(found, "statek_messages_delivered_total") >= 1


def test_histogram_is_cumulative() -> None:
    hist = Histogram((0.1, 1.0))
    for sample in (0.05, 0.1, 0.5, 5.0):
        hist.observe(sample)
    assert hist.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert hist.count == 4 and hist.sum == pytest.approx(5.65)

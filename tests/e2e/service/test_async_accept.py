"""`Prefer: respond-async` submits: appended to the worker's outbox, answered with outbox ids
(statek.server.accept); read-after-write by id, keyed requests, SIGKILL between accept and
apply."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statek.outbox.state import is_outbox_id
from tests.e2e.service.conftest import Worker

ASYNC = {"Prefer": "respond-async"}
APPLY_BOUND_S = 120.0  # failure bound only: a restarted worker applies what it finds


@pytest.fixture
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=60) as client:
        yield client


def test_batch_answers_outbox_ids_and_a_get_right_after_finds_each(http: httpx.Client) -> None:
    answer = http.post("/v1/jobs/batch", headers=ASYNC, json={
        "agent": "helper", "vars_batch": [{"i": i} for i in range(50)],
        "params": {"warmup_code": "exit(i * 2)"}})
    assert answer.status_code == 202, answer.text
    ids = answer.json()["jobs"]
    assert len(ids) == len(set(ids)) == 50 and all(is_outbox_id(i) for i in ids)
    found = [http.get(f"/v1/jobs/{job_id}") for job_id in ids]  # no wait: applied on read
    assert [f.status_code for f in found] == [200] * 50
    uuids = {f.json()["uuid"] for f in found}
    assert len(uuids) == 50 and not any(is_outbox_id(u) for u in uuids)
    deadline = time.monotonic() + APPLY_BOUND_S
    last = http.get(f"/v1/jobs/{ids[-1]}").json()
    while last["status"] != "DONE":
        assert time.monotonic() < deadline, last
        last = http.get(f"/v1/jobs/{ids[-1]}").json()
    assert last["exit_status"] == 98


def test_single_submit_and_message_by_outbox_id(http: httpx.Client) -> None:
    answer = http.post("/v1/jobs", headers=ASYNC, json={
        "agent": "helper", "params": {"warmup_code": "exit(wait_message().value)"}})
    assert answer.status_code == 202 and answer.json()["status"] == "PENDING"
    job_id = answer.json()["job"]
    pushed = http.post(f"/v1/jobs/{job_id}/messages", json={"message": "hello"})
    assert pushed.status_code == 202, pushed.text
    deadline = time.monotonic() + APPLY_BOUND_S
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] != "DONE":
        assert time.monotonic() < deadline, job
    assert job["exit_status"] == "hello"


def test_bad_input_is_refused_before_anything_is_accepted(http: httpx.Client) -> None:
    bad = http.post("/v1/jobs/batch", headers=ASYNC,
                    json={"agent": "helper", "vars_batch": [{"i": 1}, {"_hidden": 2}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "vars_batch[1]"
    unknown = http.post("/v1/jobs", headers=ASYNC, json={"agent": "nobody"})
    assert unknown.status_code == 404


def test_a_keyed_request_keeps_the_synchronous_path(http: httpx.Client) -> None:
    headers = {**ASYNC, "Idempotency-Key": "async-17"}
    first = http.post("/v1/jobs", headers=headers, json={"agent": "helper", "vars": {"n": 1}})
    again = http.post("/v1/jobs", headers=headers, json={"agent": "helper", "vars": {"n": 1}})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert not is_outbox_id(first.json()["job"])


def _applied_jobs(url: str, accepted: dict[str, int]) -> dict[str, str]:
    """Outbox id -> the uuid of the job made for it, once every id is applied."""
    deadline = time.monotonic() + APPLY_BOUND_S
    made: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for job_id, value in accepted.items():
            while True:
                got = client.get(f"/v1/jobs/{job_id}")
                if got.status_code == 200 and got.json()["status"] == "DONE":
                    assert got.json()["exit_status"] == value
                    made[job_id] = got.json()["uuid"]
                    break
                assert got.status_code in (200, 404), got.text
                assert time.monotonic() < deadline, f"{job_id} never applied"
        total = client.get("/v1/jobs", params={"limit": 1}).json()["total"]
    assert total == len(set(made.values())) == len(accepted)  # nothing doubled
    return made


def test_sigkill_after_accepting_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    from tests.e2e.service.conftest import prepare_store

    data = tmp_path / "data"
    prepare_store(data)
    accepted: dict[str, int] = {}
    chooser = random.Random(11)
    value = 0
    for _ in range(5):  # SIGKILL right after the n-th answer, at a seeded n
        worker = Worker(data)
        try:
            with httpx.Client(base_url=worker.url, timeout=60) as client:
                for _ in range(chooser.randint(1, 4)):
                    batch = list(range(value, value + 40))
                    value += 40
                    answer = client.post("/v1/jobs/batch", headers=ASYNC, json={
                        "agent": "helper", "vars_batch": [{"v": v} for v in batch],
                        "params": {"warmup_code": "exit(v)"}})
                    assert answer.status_code == 202, answer.text
                    accepted.update(zip(answer.json()["jobs"], batch, strict=True))
        finally:
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(timeout=60)
    worker = Worker(data)
    try:
        _applied_jobs(worker.url, accepted)
    finally:
        worker.stop()


def test_an_outbox_id_no_one_gave_is_a_404(http: httpx.Client) -> None:
    unknown = "ob" + "0" * 16 + "7"
    assert is_outbox_id(unknown)
    answer = http.get(f"/v1/jobs/{unknown}")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found"

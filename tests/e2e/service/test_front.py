"""`statek serve`: the HTTP API from a front process beside a running worker (a subprocess
each): writes through the front's outbox, reads and streams forwarded, idempotency keys
across a front restart and with the worker down, bad input, auth, SIGKILL of the front."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import statek
from statek.outbox.state import is_outbox_id
from statek.remote import RemoteEvent
from tests.e2e.service.conftest import Front, Worker, clean_env, prepare_store
from tests.e2e.service.test_async_accept import _applied_jobs
from tests.e2e.service.test_http_api import WAITER, check_stream_resumes

APPLY_BOUND_S = 120.0  # failure bound only: the worker applies within milliseconds


@pytest.fixture(scope="module")
def front(worker: Worker, data_dir: Path) -> Iterator[Front]:
    served = Front(data_dir)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def http(front: Front) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.url, timeout=60) as client:
        yield client


def _killed(served: Front | Worker) -> None:
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(timeout=60)


def _done(client: httpx.Client, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + APPLY_BOUND_S
    while True:
        got = client.get(f"/v1/jobs/{job_id}")
        if got.status_code == 200 and got.json()["status"] == "DONE":
            return dict(got.json())
        assert got.status_code in (200, 404), got.text
        assert time.monotonic() < deadline, f"{job_id} not done: {got.text}"


def test_a_batch_is_accepted_by_the_front_and_run_by_the_worker(http: httpx.Client) -> None:
    answer = http.post("/v1/jobs/batch", json={
        "agent": "helper", "vars_batch": [{"i": i} for i in range(30)],
        "params": {"warmup_code": "exit(i * 3)"}})
    assert answer.status_code == 202, answer.text
    ids = answer.json()["jobs"]
    assert len(set(ids)) == 30 and all(is_outbox_id(i) for i in ids)
    first = http.get(f"/v1/jobs/{ids[0]}")  # right after: the job, or PENDING after 1 s
    assert first.status_code == 200, first.text
    read = first.json()
    assert not is_outbox_id(read["uuid"]) or (read["uuid"], read["status"]) == (ids[0],
                                                                                "PENDING")
    assert not is_outbox_id(_done(http, ids[0])["uuid"])
    assert [_done(http, job_id)["exit_status"] for job_id in ids] == [i * 3 for i in range(30)]


def test_the_client_api_through_the_front(front: Front) -> None:
    with statek.connect(front.url) as client:
        job = client.submit_new_job("helper", {"x": 1})
        assert job.status == "PENDING" and is_outbox_id(job.uuid)
        done = client.wait(job, timeout=APPLY_BOUND_S)  # the stream, forwarded
        assert done.is_done and done.locals == {"x": 1}
        waiter = client.submit_new_job("helper", warmup_code=WAITER)
        assert client.push_message(waiter, "hi") >= 0  # before the worker applied the job
        assert client.wait(waiter, timeout=APPLY_BOUND_S).exit_status == "hi"
        blocked = client.submit_new_job("helper", warmup_code=WAITER)
        assert client.cancel_job(blocked) is True
        assert client.cancel_job(blocked) is False  # queued already: not queued twice
        cancelled = client.wait(blocked, timeout=APPLY_BOUND_S)
        assert cancelled.cancelled
        assert client.cancel_job(blocked.uuid) is False  # DONE as the front reads it
        with pytest.raises(statek.IllegalTransitionError):
            client.push_message(blocked, "late")
        ids = client.submit_new_job_ids("helper", [{"i": 0}, {"i": 1}])
        assert [client.wait(j, timeout=APPLY_BOUND_S).locals["i"] for j in ids] == [0, 1]
        batch = client.submit_new_jobs_batch("helper", [{"i": 2}])
        assert [job.status for job in batch] == ["PENDING"]  # as answered, not assumed
        assert client.push_event("collector", {"n": 5}) >= 0


def test_a_job_stream_through_the_front_has_console_and_end(http: httpx.Client) -> None:
    answer = http.post("/v1/jobs", json={
        "agent": "helper", "params": {"warmup_code": "print('one')\nexit(wait_message().value)"}})
    job_id = answer.json()["job"]
    seen: list[str] = []
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
                if '"SUSPENDED"' in line:
                    pushed = http.post(f"/v1/jobs/{job_id}/messages", json={"message": "end"})
                    assert pushed.status_code == 202, pushed.text
                if '"DONE"' in line:
                    break
    assert any('"one\\n"' in line for line in seen) and '"exit_status":"end"' in seen[-1]


def test_a_stream_through_the_front_resumes_after_a_dropped_connection(
        http: httpx.Client) -> None:
    job_id = http.post("/v1/jobs", json={"agent": "helper", "params": {
        "warmup_code": WAITER}}).json()["job"]
    check_stream_resumes(http, job_id, http.get(f"/v1/jobs/{job_id}").json()["uuid"])


def test_bad_input_is_refused_by_name_and_nothing_is_accepted(http: httpx.Client) -> None:
    checks = [
        (http.post("/v1/jobs", json={"agent": "nobody"}), 404, "agent_not_found"),
        (http.post("/v1/jobs", json={"agent": "helper", "colour": 1}), 400, "invalid_field"),
        (http.post("/v1/jobs/batch", json={"agent": "helper", "vars_batch": []}), 400,
         "invalid_field"),
        (http.post("/v1/jobs/batch", json={"agent": "helper",
                                           "vars_batch": [{"i": 1}, {"_hidden": 2}]}),
         422, "unstorable_value"),
        (http.post("/v1/jobs", content=b"{", headers={"Content-Type": "application/json"}),
         400, "invalid_json"),
        (http.post("/v1/jobs/NOSUCHJOB/messages", json={"message": 1}), 404, "job_not_found"),
        (http.post("/v1/jobs/" + "ob" + "0" * 16 + "7/cancel"), 404, "job_not_found"),
        (http.post("/v1/agents/helper/events", json={"event": 1}), 409,
         "agent_takes_no_events"),
    ]
    for answer, status, code in checks:
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), \
            answer.text
    assert checks[3][0].json()["error"]["field"] == "vars_batch[1]"


def test_a_repeated_key_replays_and_a_reused_one_is_a_409(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "front-1"}
    body = {"agent": "helper", "vars": {"n": 1}}
    first = http.post("/v1/jobs", headers=headers, json=body)
    again = http.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    reordered = http.post("/v1/jobs", content=b'{"vars": {"n": 1}, "agent": "helper"}',
                          headers={**headers, "Content-Type": "application/json"})
    assert reordered.json() == first.json(), reordered.text
    other = http.post("/v1/jobs", headers=headers, json={**body, "vars": {"n": 2}})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_key_is_answered_after_the_front_restarts(worker: Worker, data_dir: Path) -> None:
    body = {"agent": "helper", "vars": {"n": 7}}
    first_front = Front(data_dir)
    try:
        with httpx.Client(base_url=first_front.url, timeout=60) as client:
            first = client.post("/v1/jobs", headers={"Idempotency-Key": "restart-1"}, json=body)
            assert first.status_code == 202
            _done(client, first.json()["job"])  # applied: the key is in the worker's store
    finally:
        _killed(first_front)
    second_front = Front(data_dir)
    try:
        with httpx.Client(base_url=second_front.url, timeout=60) as client:
            again = client.post("/v1/jobs", headers={"Idempotency-Key": "restart-1"}, json=body)
            assert again.json() == first.json(), again.text
            assert again.headers["Idempotent-Replayed"] == "true"
    finally:
        second_front.stop()


def test_with_no_worker_writes_wait_and_a_retried_key_makes_one_job(tmp_path: Path) -> None:
    """The worker is down: the front accepts into its segment and says reads need a worker;
    a front restarted before anything was applied cannot know a key, so the retry gets new
    ids: the worker makes them name the first request's job."""
    data = tmp_path / "data"
    prepare_store(data)
    body = {"agent": "helper", "vars": {"n": 3}, "params": {"warmup_code": "exit(n)"}}
    answers = []
    for _ in range(2):
        front = Front(data)
        try:
            with httpx.Client(base_url=front.url, timeout=60) as client:
                answer = client.post("/v1/jobs", headers={"Idempotency-Key": "down-1"},
                                     json=body)
                assert answer.status_code == 202, answer.text
                answers.append(answer.json()["job"])
                read = client.get("/v1/jobs")
                assert read.status_code == 503 and read.json()["error"]["code"] == \
                    "no_worker_api"
                assert "statek worker --http-port" in read.json()["error"]["message"]
                for path in ("", "/events"):  # a job it accepted: no wait for a worker that
                    pending = client.get(f"/v1/jobs/{answers[-1]}{path}")  # is not there
                    assert pending.status_code == 503, pending.text  # (a stream waited 300 s)
                for probe in ("/healthz", "/readyz", "/v1/health", "/v1/openapi.json"):
                    assert client.get(probe).status_code == 200, probe  # the front's own
                assert client.get("/v1/health").json()["worker_url"] is None
        finally:
            _killed(front)
    assert answers[0] != answers[1]
    worker = Worker(data)
    try:
        with httpx.Client(base_url=worker.url, timeout=60) as client:
            made = {_done(client, job_id)["uuid"] for job_id in answers}
            assert len(made) == 1  # one job, named by both ids
            assert client.get("/v1/jobs", params={"limit": 1}).json()["total"] == 1
    finally:
        worker.stop()


def _accept_batches(url: str, count: int, accepted: dict[str, int]) -> None:
    """`count` batches of 50 jobs `exit(v)` through the front at `url`, each v new;
    `accepted` gets outbox id -> v for each job answered."""
    start = max(accepted.values(), default=-1) + 1
    with httpx.Client(base_url=url, timeout=60) as client:
        for first in range(start, start + 50 * count, 50):
            batch = list(range(first, first + 50))
            answer = client.post("/v1/jobs/batch", json={
                "agent": "helper", "vars_batch": [{"v": v} for v in batch],
                "params": {"warmup_code": "exit(v)"}})
            assert answer.status_code == 202, answer.text
            accepted.update(zip(answer.json()["jobs"], batch, strict=True))


def test_sigkill_of_the_front_loses_no_accepted_job_and_doubles_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_store(data)
    worker = Worker(data, "--concurrency", "200")
    accepted: dict[str, int] = {}
    chooser = random.Random(23)
    try:
        for _ in range(5):  # SIGKILL right after the n-th answer, at a seeded n
            front = Front(data)
            try:
                _accept_batches(front.url, chooser.randint(1, 5), accepted)
            finally:
                _killed(front)
        _applied_jobs(worker.url, accepted)  # each done once, with its own value
    finally:
        worker.stop()


def test_sigkill_of_the_worker_behind_the_front_loses_nothing_and_doubles_nothing(
        tmp_path: Path) -> None:
    """The front keeps accepting while the worker is SIGKILLed at seeded moments (after a
    seeded number of accepted batches, the worker mid-way through applying and running
    them) and started again; every accepted job runs exactly once."""
    data = tmp_path / "data"
    prepare_store(data)
    front = Front(data)
    accepted: dict[str, int] = {}
    chooser = random.Random(29)
    try:
        for _ in range(5):
            worker = Worker(data, "--concurrency", "50")
            try:
                _accept_batches(front.url, chooser.randint(1, 6), accepted)
            finally:
                _killed(worker)
        worker = Worker(data)
        try:
            _applied_jobs(worker.url, accepted)
        finally:
            worker.stop()
    finally:
        front.stop()


def test_a_token_guards_the_front_and_is_passed_to_the_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_store(data)
    worker = Worker(data, STATEK_HTTP_TOKEN="s3cret")
    front = Front(data, STATEK_HTTP_TOKEN="s3cret")
    try:
        with httpx.Client(base_url=front.url, timeout=60) as client:
            refused = client.post("/v1/jobs", json={"agent": "helper"})
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
            assert client.get("/v1/jobs").status_code == 401
            wrong = client.get("/v1/jobs", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        with statek.connect(front.url, token="s3cret") as remote:
            job = remote.submit_new_job("helper", {"k": 2})
            assert remote.wait(job, timeout=APPLY_BOUND_S).locals == {"k": 2}
    finally:
        front.stop()
        worker.stop()


def test_the_front_refuses_a_public_bind_without_a_real_token(data_dir: Path) -> None:
    import subprocess
    import sys

    from tests.e2e.service.conftest import clean_env

    for token, told in ((None, "without a token"), ("", "set but empty"),
                        ("tiny", "a token of 4 characters")):
        extra = {} if token is None else {"STATEK_HTTP_TOKEN": token}
        done = subprocess.run([sys.executable, "-m", "statek", "serve", "--host", "0.0.0.0",
                               "--port", "0"], env=clean_env(data_dir, **extra),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and told in done.stderr, done.stderr


def test_a_key_reused_through_two_fronts_is_refused_by_name(tmp_path: Path) -> None:
    """Two fronts cannot see each other's keys: both accept; the worker applies the one it
    meets first (producers are not ordered among themselves) and refuses the other, whose
    id then reads as refused (not as pending forever)."""
    data = tmp_path / "data"
    prepare_store(data)
    first, second = Front(data), Front(data)
    try:
        ids = []
        for front, n in ((first, 1), (second, 2)):
            with httpx.Client(base_url=front.url, timeout=60) as client:
                answer = client.post("/v1/jobs", headers={"Idempotency-Key": "twice"},
                                     json={"agent": "helper", "vars": {"n": n},
                                           "params": {"warmup_code": "exit(n)"}})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["job"])
    finally:
        first.stop()
        second.stop()
    worker = Worker(data)
    try:
        with httpx.Client(base_url=worker.url, timeout=60) as client:
            deadline = time.monotonic() + APPLY_BOUND_S
            while True:  # until one is DONE and the other reads as refused
                answers = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
                done = [a for a in answers if a.get("status") == "DONE"]
                refused = [a for a in answers if "refused" in str(a.get("error"))]
                if done and refused:
                    break
                assert time.monotonic() < deadline, answers
            assert done[0]["exit_status"] == done[0]["locals"]["n"]
            assert client.get("/v1/jobs", params={"limit": 1}).json()["total"] == 1
    finally:
        worker.stop()


def test_a_bad_or_looping_upstream_is_refused(data_dir: Path) -> None:
    import socket
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "statek", "serve", "--port", "0",
                          "--upstream", "notaurl"], env=clean_env(data_dir),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--upstream 'notaurl' must be http(s)" in bad.stderr
    with socket.socket() as probe:  # a free port, then the front told to forward to itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the last --port wins: the front listens where it forwards
    looping = Front(data_dir, "--port", str(port), "--upstream", f"http://127.0.0.1:{port}")
    try:
        with httpx.Client(base_url=looping.url, timeout=60) as client:
            answer = client.get("/v1/jobs")
            assert answer.status_code == 508 and answer.json()["error"]["code"] == \
                "forwarding_loop"
    finally:
        looping.stop()


def test_a_token_the_worker_refuses_is_explained(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_store(data)
    worker = Worker(data, STATEK_HTTP_TOKEN="worker-token")
    front = Front(data, STATEK_HTTP_TOKEN="front-token")
    try:
        with httpx.Client(base_url=front.url, timeout=60,
                          headers={"Authorization": "Bearer front-token"}) as client:
            read = client.get("/v1/jobs")
            assert read.status_code == 401, read.text
            assert "same STATEK_HTTP_TOKEN" in read.json()["error"]["message"]
    finally:
        front.stop()
        worker.stop()


def test_a_read_before_the_worker_applied_answers_pending(tmp_path: Path) -> None:
    """The worker is stopped (SIGSTOP: alive, not applying): a read of a job the front
    accepted answers PENDING after a short wait (a 404 here read as "lost" and invited a
    second submit); once the worker goes on, the job runs."""
    data = tmp_path / "data"
    prepare_store(data)
    worker = Worker(data)
    front = Front(data)
    try:
        with httpx.Client(base_url=front.url, timeout=60) as client:
            worker.proc.send_signal(signal.SIGSTOP)
            try:
                job_id = client.post("/v1/jobs", json={
                    "agent": "helper", "vars": {"n": 4},
                    "params": {"warmup_code": "exit(n)"}}).json()["job"]
                read = client.get(f"/v1/jobs/{job_id}")
                assert read.status_code == 200, read.text
                assert (read.json()["uuid"], read.json()["status"], read.json()["applied"]) == \
                    (job_id, "PENDING", False)
            finally:
                worker.proc.send_signal(signal.SIGCONT)
            assert _done(client, job_id)["exit_status"] == 4
    finally:
        front.stop()
        worker.stop()


def test_sigterm_stops_the_front_cleanly(data_dir: Path) -> None:
    front = Front(data_dir)
    front.proc.send_signal(signal.SIGTERM)
    assert front.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 60  # the reader thread hands over the last lines
    while not any("statek serve stopped" in line for line in front.output):
        assert time.monotonic() < deadline, "".join(front.output)
        time.sleep(0.05)


def test_an_event_stream_through_the_front_outlives_a_worker_restart(tmp_path: Path) -> None:
    """connect(front).events() while the worker is SIGKILLed and started again (on another
    port): the front answers 502/503 meanwhile, the client reconnects (a `gap`: the new
    worker's events are numbered anew) and sees the new worker's jobs."""
    import queue
    import threading

    data = tmp_path / "data"
    prepare_store(data)
    worker = Worker(data)
    front = Front(data)
    seen: queue.Queue[object] = queue.Queue()

    def follow() -> None:
        try:
            with statek.connect(front.url) as client:
                for event in client.events(last_event_id="unknown-0"):  # a gap first
                    seen.put(event)
        except Exception as exc:  # the test fails on it below
            seen.put(exc)

    def next_event(until: float) -> RemoteEvent:
        event = seen.get(timeout=max(0.1, until - time.monotonic()))
        assert isinstance(event, RemoteEvent), event  # not the follower's exception
        return event

    threading.Thread(target=follow, daemon=True).start()
    try:
        deadline = time.monotonic() + APPLY_BOUND_S
        assert next_event(deadline).kind == "gap"  # connected: what happens now is heard
        with statek.connect(front.url) as client:
            first = client.submit_new_job("helper", {"n": 1})
            while next_event(deadline).data.get("status") != "DONE":
                pass  # the follower is connected and hears the first worker
            _killed(worker)
            worker = Worker(data)
            while next_event(deadline).kind != "gap":
                pass  # reconnected (502/503 meanwhile) to the new worker: a gap
            second = client.submit_new_job("helper", {"n": 2})
            uuid = client.wait(second, timeout=APPLY_BOUND_S).uuid
        while True:
            event = next_event(deadline)
            if event.data.get("job") == uuid and event.data.get("status") == "DONE":
                break
        assert first.uuid != second.uuid
    finally:
        front.stop()
        worker.stop()

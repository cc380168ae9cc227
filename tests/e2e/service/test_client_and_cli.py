"""statek.connect against a real worker, retries relying on idempotency keys, the CLI, the
second-writer message, auth and limits."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import statek
from statek.remote import RemoteError, StatekRemoteClient
from tests.e2e.service.conftest import Worker, clean_env, prepare_store

WAITER = "print('waiting')\nexit(wait_message().value)"


def test_client_has_the_client_api_and_runs_jobs(worker: Worker) -> None:
    with statek.connect(worker.url) as client:
        for name in ("submit_new_job", "submit_new_jobs_batch", "submit_new_job_ids",
                     "get_job", "push_message", "push_event", "cancel_job"):
            assert callable(getattr(client, name)) and callable(getattr(client, name + "_async"))
        job = client.submit_new_job("helper", {"x": 1})
        done = client.wait(job, timeout=120)
        assert done.is_done and done.exit_status == "ok" and done.locals == {"x": 1}
        waiter = client.submit_new_job("helper", warmup_code=WAITER)
        assert client.push_message(waiter, "hi") >= 0
        assert client.wait(waiter, timeout=120).exit_status == "hi"
        batch = client.submit_new_jobs_batch("helper", [{"i": 0}, {"i": 1}])
        assert [client.wait(j, timeout=120).locals["i"] for j in batch] == [0, 1]
        blocked = client.submit_new_job("helper", warmup_code=WAITER)
        assert client.cancel_job(blocked) is True and client.cancel_job(blocked.uuid) is False
        with pytest.raises(statek.IllegalTransitionError):
            client.push_message(blocked, "late")
        with pytest.raises(statek.JobNotFoundError):
            client.get_job("NOSUCHJOB")
        with pytest.raises(statek.UnstorableValueError):
            client.submit_new_job("helper", {"_private": 1})
        with pytest.raises(RemoteError) as refused:
            client.submit_new_job("nobody")
        assert refused.value.status == 404 and "nobody" in str(refused.value)


def test_wait_gives_up_at_its_timeout_on_a_quiet_stream(worker: Worker) -> None:
    """A job waiting for a message sends no events, only the server's keep-alives: `wait`
    blocked forever (it looked at its deadline only when an event came)."""
    outcome: list[BaseException | None] = []
    with statek.connect(worker.url) as client:
        waiter = client.submit_new_job("helper", warmup_code=WAITER)

        def wait() -> None:
            try:
                client.wait(waiter, timeout=1.0)
                outcome.append(None)
            except BaseException as exc:  # the test reports what it got
                outcome.append(exc)

        began = time.monotonic()
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        thread.join(60)  # a failure bound
        assert not thread.is_alive(), "wait(timeout=1.0) still blocked after 60 s"
        assert isinstance(outcome[0], TimeoutError), outcome
        assert time.monotonic() - began < 15  # before any keep-alive could have ended it
        assert client.cancel_job(waiter) is True


def test_async_variants(worker: Worker) -> None:
    async def main() -> tuple[Any, Any]:
        async with statek.connect(worker.url) as client:
            (job_id,) = await client.submit_new_job_ids_async("helper", [{"a": 1}])
            async for event in client.events_async(job_id):
                if event.kind == "status" and event.data["status"] == "DONE":
                    break
            seq = await client.push_event_async("collector", "from-async")
            return await client.get_job_async(job_id), seq

    job, seq = asyncio.run(main())
    assert job.exit_status == "ok" and seq >= 0


class _LosesFirstAnswer(httpx.BaseTransport):
    """Sends every request, but drops the first POST's response: the connection 'broke'."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "POST":
            return response
        self.sent.append(request.headers["Idempotency-Key"])
        if len(self.sent) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the request was sent")
        return response


def test_a_retry_after_a_lost_answer_creates_no_second_job(worker: Worker) -> None:
    client = StatekRemoteClient(worker.url, backoff=0.0)
    transport = _LosesFirstAnswer()
    client._sync = httpx.Client(base_url=worker.url, transport=transport, timeout=60)
    before = client.list_jobs(limit=1)["total"]
    job = client.submit_new_job("helper", {"once": True})
    assert len(transport.sent) == 2 and transport.sent[0] == transport.sent[1]
    assert client.list_jobs(limit=1)["total"] == before + 1
    assert client.get_job(job.uuid).locals == {"once": True}
    client.close()


def test_values_no_job_can_store_fail_in_the_client_naming_the_key(worker: Worker) -> None:
    """The same error as in-process, before any request: a 2**70 made orjson raise a bare
    TypeError (found by a new-user trial)."""
    from statek.errors import UnstorableValueError

    with statek.connect(worker.url) as client:
        before = client.counts()
        with pytest.raises(UnstorableValueError, match=r"shared variables\['n'\].*64 bits"):
            client.submit_new_job("helper", {"n": 2**70})
        with pytest.raises(UnstorableValueError, match=r"#1.*name '_x'"):
            client.submit_new_job_ids("helper", [{"a": 1}, {"_x": 2}])
        with pytest.raises(UnstorableValueError, match=r"message.*64 bits"):
            client.push_message(client.submit_new_job("helper", {"a": 1}), 2**70)
        with pytest.raises(UnstorableValueError, match=r"event.*64 bits"):
            client.push_event("helper", {"n": 2**70})
        assert client.counts()["total"] == before["total"] + 1


def test_unreachable_worker_is_one_clear_error() -> None:
    with statek.connect("http://127.0.0.1:9", retries=1, backoff=0.0) as client, \
            pytest.raises(ConnectionError, match="cannot reach the statek worker"):
        client.get_job("X")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=120)


def test_cli_against_the_url_and_the_embedded_store(worker: Worker, data_dir: Path) -> None:
    made = _cli(data_dir, "submit", "helper", "--var", "n=3", "--var", "who=ann",
                "--json", '{"w": [1]}', "--param", "max_turns=3", "--url", worker.url)
    assert made.returncode == 0, made.stderr
    job = made.stdout.strip()
    tailed = _cli(data_dir, "tail", job, "--url", worker.url)
    assert tailed.returncode == 0 and "[DONE] exit_status: \"ok\"" in tailed.stdout
    shown = _cli(data_dir, "show", job, "--url", worker.url)
    assert shown.returncode == 0 and "status DONE" in shown.stdout and "n = 3" in shown.stdout
    assert "who = \"ann\"" in shown.stdout and "w = [1]" in shown.stdout
    local = _cli(data_dir, "show", job)  # read-only while the worker runs
    assert local.returncode == 0 and "status DONE" in local.stdout, local.stderr
    for listing in (_cli(data_dir, "jobs", "--url", worker.url), _cli(data_dir, "jobs")):
        assert listing.returncode == 0 and job in listing.stdout and "helper" in listing.stdout
    waiter = _cli(data_dir, "submit", "helper", "--url", worker.url).stdout.strip()
    pushed = _cli(data_dir, "push", waiter, '"x"', "--json", "--url", worker.url)
    assert pushed.returncode == 0 and "queued message" in pushed.stdout
    for where in (("--url", worker.url), ()):  # a DONE job: nothing cancelled, exit 1
        cancel = _cli(data_dir, "cancel", job, *where)
        assert cancel.returncode == 1, cancel.stderr
        assert "had already finished: nothing to cancel" in cancel.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("submit", "helper", "--json", "{bad"), "--json is not valid JSON"),
    (("submit", "helper", "--var", "novalue"), "expected NAME=VALUE"),
    (("show", "NOSUCHJOB"), "no job with uuid"),
    (("push", "NOSUCHJOB", "{", "--json"), "not valid JSON"),
    # submit, push and cancel go through the outbox while a worker runs (tests/outbox)
    (("cancel", "NOSUCHJOB"), "no job with uuid"),
    # another store's uuid (dbzero raised RuntimeError) and a uuid4: the same one line
    (("push", "MGVLTMKGT7NUFIEBUKWYABAX", "hello"), "no job with uuid"),
    (("show", "MGVLTMKGT7NUFIEBUKWYABAX"), "no job with uuid"),
    (("cancel", "88ec2038-5a9d-4c1e-9b7e-3f2a1c0d4e5f"), "no job with uuid"),
    # a well-formed outbox id no producer issued: refused, not dead-lettered by the worker
    (("push", "ob" + "0" * 16 + "7", "hello"), "no job with id 'ob00000000000000007'"),
    (("cancel", "ob" + "f" * 16 + "0"), "no producer has issued it"),
    (("budget", "NOSUCHJOB", "--tokens", "5"), "holds the store"),  # not through the outbox
    (("agent", "add", "latecomer"), "stop it first (agents are created while no worker"),
    (("submit", "helper", "--key", "k1"), "--key (an idempotency key) is for --url"),
    (("submit", "helper", "--param", "max_turns=ten"), "job_params['max_turns'] must be an int"),
    (("submit", "helper", "--param", "novalue"), "--param 'novalue': expected NAME=VALUE"),
    (("jobs", "--url", "localhost:8377"), "a worker's URL is http://HOST:PORT"),
])
def test_cli_user_errors_are_one_line(worker: Worker, data_dir: Path, args: tuple[str, ...],
                                      says: str) -> None:
    done = _cli(data_dir, *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    if says == "holds the store":
        assert f"--url {worker.url}" in lines[0] and str(worker.proc.pid) in lines[0]


def test_cli_unknown_job_over_http(worker: Worker, data_dir: Path) -> None:
    for command, job_id in itertools.product(("show", "tail"),
                                             ("NOSUCHJOB", "MGVLTMKGT7NUFIEBUKWYABAX")):
        # tail's error comes while it reads the stream
        done = _cli(data_dir, command, job_id, "--url", worker.url)
        assert done.returncode == 1 and "no job with uuid" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_second_writer_is_told_who_holds_the_store(worker: Worker, data_dir: Path) -> None:
    code = ("import statek\ntry:\n    statek.open_default_store()\n"
            "except statek.store.StoreLockedError as exc:\n    print(exc.pid, exc.url)\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=120)
    first, message = done.stdout.splitlines()[:2]
    assert first == f"{worker.proc.pid} {worker.url}"
    assert "open for writing by process" in message and "statek worker" in message
    assert f"statek.connect('{worker.url}')" in message and "mode 'r'" in message
    assert "open_default_store(when_held='feed')" in message  # the same-machine way
    second = subprocess.run([sys.executable, "-m", "statek", "worker", "--offline"],
                            env=clean_env(data_dir), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 1
    assert f"process {worker.proc.pid} (" in second.stderr and "holds the store" in second.stderr
    assert "statek worker" in second.stderr  # the holder's command line
    assert f"it serves {worker.url}: stop it first" in second.stderr


def test_token_limits_and_binding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    prepare_store(data)
    refused = subprocess.run(
        [sys.executable, "-m", "statek", "worker", "--offline", "--http-port", "0",
         "--http-host", "0.0.0.0"], env=clean_env(data), capture_output=True, text=True,
        timeout=120)
    assert refused.returncode == 1 and "without a token" in refused.stderr
    for token, told in (("", "set but empty"), ("  ", "set but empty"),
                        ("short", "a token of 5 characters")):
        # an empty token matched `Authorization: Bearer` with nothing after it
        for host in ("0.0.0.0", "127.0.0.1"):
            if host == "127.0.0.1" and token == "short":
                continue  # a short token on loopback is the user's choice
            weak = subprocess.run(
                [sys.executable, "-m", "statek", "worker", "--offline", "--http-port", "0",
                 "--http-host", host], env=clean_env(data, STATEK_HTTP_TOKEN=token),
                capture_output=True, text=True, timeout=120)
            assert weak.returncode == 1 and told in weak.stderr, (token, host, weak.stderr)
    secured = Worker(data, STATEK_HTTP_TOKEN="s3cret", STATEK_HTTP_MAX_BODY="2000",
                     STATEK_HTTP_MAX_BATCH="3")
    try:
        with httpx.Client(base_url=secured.url, timeout=60) as http:
            assert http.get("/v1/health").status_code == 200  # liveness needs no token
            missing = http.get("/v1/jobs")
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
            assert "needs 'Authorization: Bearer <token>'" in missing.json()["error"]["message"]
            wrong = http.get("/v1/jobs", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert "token is not this worker's" in wrong.json()["error"]["message"]
            auth = {"Authorization": "Bearer s3cret"}
            assert http.get("/v1/jobs", headers=auth).status_code == 200
            big = http.post("/v1/jobs", json={"agent": "helper", "vars": {"t": "x" * 5000}},
                            headers=auth)
            assert big.status_code == 413 and "http_max_body" in big.json()["error"]["message"]
            many = http.post("/v1/jobs/batch", headers=auth,
                             json={"agent": "helper", "vars_batch": [{}] * 4})
            assert many.status_code == 400 and "http_max_batch" in many.text
        with statek.connect(secured.url, token="s3cret") as client:
            assert client.wait(client.submit_new_job("helper"), timeout=120).is_done
        monkeypatch.delenv("STATEK_HTTP_TOKEN", raising=False)
        with statek.connect(secured.url) as client, pytest.raises(RemoteError) as denied:
            client.list_jobs()
        assert denied.value.status == 401
        monkeypatch.setenv("STATEK_HTTP_TOKEN", "s3cret")  # read as the CLI reads it
        with statek.connect(secured.url) as client:
            assert client.list_jobs()["total"] >= 1
    finally:
        secured.stop()


def test_idempotency_key_survives_a_worker_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_store(data)
    body = {"agent": "helper", "vars": {"k": 1}}
    headers = {"Idempotency-Key": "restart-1"}
    first = Worker(data)
    try:
        answer = httpx.post(first.url + "/v1/jobs", json=body, headers=headers, timeout=60)
    finally:
        first.stop()
    second = Worker(data)
    try:
        again = httpx.post(second.url + "/v1/jobs", json=body, headers=headers, timeout=60)
        total = httpx.get(second.url + "/v1/jobs", timeout=60).json()["total"]
    finally:
        second.stop()
    assert again.json() == answer.json() and again.headers["Idempotent-Replayed"] == "true"
    assert total == 1

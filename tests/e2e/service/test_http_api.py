"""The worker's HTTP API driven by plain httpx requests: every endpoint and every 4xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.service.conftest import Worker

WAITER = "print('waiting')\nexit(wait_message().value)"


@pytest.fixture
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=60) as client:
        yield client


STREAM_BOUND_S = 120.0  # failure bound only (the server sends a keep-alive every 15 s)


def sse(response: httpx.Response) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of a streamed text/event-stream response."""
    event_id, kind, data = "", "message", []
    deadline = time.monotonic() + STREAM_BOUND_S
    for line in response.iter_lines():
        assert time.monotonic() < deadline, "the awaited event never came"
        if not line:
            if data:
                yield event_id, kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


def until_done(http: httpx.Client, job: str) -> dict[str, Any]:
    """Follow the job's stream until its DONE status; returns the job read afterwards."""
    with http.stream("GET", f"/v1/jobs/{job}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for _, kind, data in sse(response):
            if kind == "status" and data["status"] == "DONE":
                break
    answer = http.get(f"/v1/jobs/{job}")
    assert answer.status_code == 200
    return dict(answer.json())


def submit(http: httpx.Client, **body: Any) -> str:
    answer = http.post("/v1/jobs", json={"agent": "helper", **body})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job"])


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_submit_runs_and_reads_back(http: httpx.Client) -> None:
    job = submit(http, vars={"x": 5, "name": "a"})
    data = until_done(http, job)
    assert data["status"] == "DONE" and data["exit_status"] == "ok" and data["error"] is None
    assert data["locals"] == {"x": 5, "name": "a"}
    assert data["usage"]["turns"] == 1 and data["usage"]["input_tokens"] > 0
    assert data["chat_log"][0]["kind"] == "turn" and data["agent"] == "helper"


def test_batch_is_all_or_nothing(http: httpx.Client) -> None:
    before = http.get("/v1/jobs", params={"limit": 1}).json()["total"]
    answer = http.post("/v1/jobs/batch", json={"agent": "helper",
                                                "vars_batch": [{"i": 1}, {"i": 2}, None]})
    assert answer.status_code == 201 and len(answer.json()["jobs"]) == 3
    bad = http.post("/v1/jobs/batch", json={"agent": "helper",
                                             "vars_batch": [{"i": 1}, {"_hidden": 2}]})
    error = error_of(bad, 422)
    assert error["field"] == "vars_batch[1]" and error["message"].startswith("vars_batch[1]: ")
    assert http.get("/v1/jobs", params={"limit": 1}).json()["total"] == before + 3


def test_idempotency_key_replays_the_first_answer(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = http.post("/v1/jobs", json={"agent": "helper", "vars": {"n": 17}}, headers=headers)
    total = http.get("/v1/jobs", params={"limit": 1}).json()["total"]
    again = http.post("/v1/jobs", json={"agent": "helper", "vars": {"n": 17}}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert http.get("/v1/jobs", params={"limit": 1}).json()["total"] == total
    reordered = http.post("/v1/jobs", content=b'{ "vars": {"n": 17},  "agent": "helper"}',
                          headers={**headers, "Content-Type": "application/json"})
    assert reordered.json() == first.json(), reordered.text  # the same JSON value
    other = http.post("/v1/jobs", json={"agent": "helper", "vars": {"n": 18}}, headers=headers)
    assert error_of(other, 409)["field"] == "Idempotency-Key"
    bad_key = http.post("/v1/jobs", json={"agent": "helper"}, headers={"Idempotency-Key": "a b"})
    assert error_of(bad_key, 400)["field"] == "Idempotency-Key"


def test_message_wakes_a_waiting_job_and_cancel_ends_one(http: httpx.Client) -> None:
    job = submit(http, params={"warmup_code": WAITER})
    pushed = http.post(f"/v1/jobs/{job}/messages", json={"message": {"reply": 42}},
                       headers={"Idempotency-Key": f"msg-{job}"})
    assert pushed.status_code == 202 and isinstance(pushed.json()["seq"], int)
    data = until_done(http, job)
    assert data["exit_status"] == {"reply": 42} and data["console"] == ["waiting\n"]
    assert data["messages"]["received"] == 1

    other = submit(http, params={"warmup_code": WAITER})
    cancelled = http.post(f"/v1/jobs/{other}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": True,
                                                                 "status": "DONE"}
    assert http.post(f"/v1/jobs/{other}/cancel").json()["cancelled"] is False
    refused = http.post(f"/v1/jobs/{other}/messages", json={"message": "late"})
    assert error_of(refused, 409)["code"] == "illegal_transition"
    assert http.get(f"/v1/jobs/{other}").json()["cancelled"] is True


def test_event_becomes_a_job(http: httpx.Client) -> None:
    with http.stream("GET", "/v1/events") as response:  # live from here on
        answer = http.post("/v1/agents/collector/events", json={"event": "topic-9"})
        assert answer.status_code == 202
        for _, kind, data in sse(response):
            if kind == "status" and data["status"] == "DONE" and data["exit_status"] == "topic-9":
                break
    found = http.get("/v1/jobs", params={"agent": "collector", "status": "DONE"}).json()
    assert any(j["agent"] == "collector" for j in found["jobs"])


def test_listing_pages_filters_and_counts(http: httpx.Client) -> None:
    mine = http.post("/v1/jobs/batch", json={
        "agent": "helper", "vars_batch": [{"i": i} for i in range(5)],
        "params": {"warmup_code": WAITER}}).json()["jobs"]
    seen: list[str] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({} if cursor is None else {"cursor": cursor})}
        page = http.get("/v1/jobs", params=params).json()
        assert len(page["jobs"]) <= 2
        seen.extend(j["uuid"] for j in page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[-5:] == mine and len(seen) == len(set(seen))
    newest = http.get("/v1/jobs", params={"order": "desc", "limit": 5}).json()["jobs"]
    assert [j["uuid"] for j in newest] == mine[::-1]
    shouted = http.get("/v1/jobs", params={"order": "DESC", "limit": 5}).json()["jobs"]
    assert shouted == newest  # as status=done is taken for DONE
    counts = http.get("/v1/counts").json()
    assert counts["total"] == len(seen)
    assert sum(counts["by_status"].values()) == counts["total"]
    assert sum(counts["by_agent"]["helper"].values()) >= 5
    for job in mine:
        assert http.post(f"/v1/jobs/{job}/cancel").json()["cancelled"] is True
    done = http.get("/v1/jobs", params={"status": "DONE", "limit": 1000}).json()["jobs"]
    assert set(mine) <= {j["uuid"] for j in done}
    assert not {j["uuid"] for j in http.get(
        "/v1/jobs", params={"status": "READY,SUSPENDED", "limit": 1000}).json()["jobs"]} & set(mine)


def test_agents_health_and_openapi(http: httpx.Client, worker: Worker) -> None:
    roles = {a["role"]: a for a in http.get("/v1/agents").json()["agents"]}
    assert roles["collector"]["supervised"] is True and roles["helper"]["supervised"] is False
    health = http.get("/v1/health").json()
    assert health["ok"] is True and health["pid"] == worker.proc.pid
    document = http.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{uuid}", "/v1/jobs/{uuid}/messages",
            "/v1/jobs/{uuid}/cancel", "/v1/jobs/{uuid}/events", "/v1/events",
            "/v1/agents/{agent}/events", "/v1/counts"} <= set(document["paths"])


@pytest.mark.parametrize(("method", "path", "body", "status", "names"), [
    ("POST", "/v1/jobs", b"{not json", 400, "not valid JSON"),
    ("POST", "/v1/jobs", b"[1, 2]", 400, "must be a JSON object"),
    ("POST", "/v1/jobs", {"agent": "helper", "colour": 1}, 400, "colour"),
    ("POST", "/v1/jobs", {"vars": {}}, 400, "agent"),
    ("POST", "/v1/jobs", {"agent": 7}, 400, "agent"),
    ("POST", "/v1/jobs", {"agent": "helper", "vars": [1]}, 400, "vars"),
    ("POST", "/v1/jobs", {"agent": "helper", "locale": 3}, 400, "locale"),
    ("POST", "/v1/jobs", {"agent": "helper", "params": {"model": 5}}, 422, "model"),
    ("POST", "/v1/jobs", {"agent": "nobody"}, 404, "nobody"),
    ("POST", "/v1/jobs/batch", {"agent": "helper"}, 400, "vars_batch"),
    ("POST", "/v1/jobs/batch", {"agent": "helper", "vars_batch": []}, 400, "vars_batch"),
    ("POST", "/v1/jobs/batch", {"agent": "helper", "vars_batch": [1]}, 400, "vars_batch[0]"),
    ("GET", "/v1/jobs/NOSUCHJOB", None, 404, "NOSUCHJOB"),
    ("GET", "/v1/jobs/bad%20uuid", None, 404, "no job"),
    ("POST", "/v1/jobs/NOSUCHJOB/messages", {"message": 1}, 404, "NOSUCHJOB"),
    ("POST", "/v1/jobs/NOSUCHJOB/cancel", None, 404, "NOSUCHJOB"),
    ("GET", "/v1/jobs/NOSUCHJOB/events", None, 404, "NOSUCHJOB"),
    ("POST", "/v1/agents/nobody/events", {"event": 1}, 404, "nobody"),
    ("POST", "/v1/agents/collector/events", {}, 400, "event"),
    ("POST", "/v1/agents/helper/events", {"event": 1}, 409, "is not a SupervisedAgent"),
    ("GET", "/v1/jobs?limit=0", None, 400, "limit"),
    ("GET", "/v1/jobs?limit=x", None, 400, "limit"),
    ("GET", "/v1/jobs?status=BOGUS", None, 400, "status"),
    ("GET", "/v1/jobs?order=sideways", None, 400, "order"),
    ("GET", "/v1/jobs?colour=red", None, 400, "colour"),
    ("GET", "/v1/nowhere", None, 404, "Not Found"),
    ("DELETE", "/v1/jobs", None, 405, "Method Not Allowed"),
])
def test_bad_requests_name_the_problem(http: httpx.Client, method: str, path: str, body: Any,
                                       status: int, names: str) -> None:
    if isinstance(body, bytes):
        answer = http.request(method, path, content=body,
                              headers={"Content-Type": "application/json"})
    else:
        answer = http.request(method, path, json=body) if body is not None else http.request(
            method, path)
    error = error_of(answer, status)
    assert names in error["message"] or names == error.get("field"), error


def test_message_needs_json_content_type(http: httpx.Client) -> None:
    job = submit(http, params={"warmup_code": WAITER})
    answer = http.post(f"/v1/jobs/{job}/messages", content=b"hello",
                       headers={"Content-Type": "text/plain"})
    assert error_of(answer, 415)["code"] == "unsupported_media_type"
    http.post(f"/v1/jobs/{job}/cancel")


def test_job_stream_resumes_after_a_dropped_connection(http: httpx.Client) -> None:
    job = submit(http, params={"warmup_code": WAITER})
    check_stream_resumes(http, job, job)


def check_stream_resumes(http: httpx.Client, job: str, uuid: str) -> None:
    """The stream of a job waiting for a message (WAITER), dropped once the job suspended,
    then resumed with Last-Event-ID: what came after, and nothing sent before."""
    last_id = ""
    with http.stream("GET", f"/v1/jobs/{job}/events") as response:
        for event_id, kind, data in sse(response):
            last_id = event_id
            if kind == "status" and data["status"] == "SUSPENDED":
                break  # the connection drops here
    assert http.post(f"/v1/jobs/{job}/messages", json={"message": "go"}).status_code == 202
    resumed: list[tuple[str, dict[str, Any]]] = []
    with http.stream("GET", f"/v1/jobs/{job}/events",
                     headers={"Last-Event-ID": last_id}) as response:
        for _, kind, data in sse(response):
            resumed.append((kind, data))
            if kind == "status" and data["status"] == "DONE":
                break
    assert resumed[-1][1]["exit_status"] == "go"
    assert ("console", {"job": uuid, "line": 0, "text": "waiting\n"}) not in resumed
    assert all(d["job"] == uuid for _, d in resumed)


def test_stream_from_an_unknown_point_reports_a_gap(http: httpx.Client) -> None:
    job = submit(http)
    with http.stream("GET", f"/v1/jobs/{job}/events",
                     headers={"Last-Event-ID": "0000-1"}) as response:
        events = sse(response)
        assert next(events)[1] == "gap"
        for _, kind, data in events:  # then the job as stored, and on
            if kind == "status" and data["status"] == "DONE":
                break


COLLECTOR = ("a = wait_message().value\nb = wait_message().value\nc = wait_message().value\n"
             "exit(repr([a, b, c]))")


def test_messages_of_every_shape_arrive_as_sent(http: httpx.Client) -> None:
    """Messages over HTTP (which the worker's queue stores packed as JSON) reach the job in
    the order sent and unchanged, at the edges of what is storable (the least int, 60 levels
    of nesting); a lone surrogate, an int beyond 64 bits and 70 levels are refused, naming
    the problem, and queue nothing."""
    job = submit(http, params={"warmup_code": COLLECTOR})

    def nested(levels: int) -> Any:
        value: Any = "bottom"
        for _ in range(levels):
            value = [value]
        return value
    refused = http.post(f"/v1/jobs/{job}/messages", content=b'{"message": "half \\ud800 pair"}',
                        headers={"content-type": "application/json"})
    assert "surrogate" in error_of(refused, 400)["message"]
    too_big = http.post(f"/v1/jobs/{job}/messages", json={"message": 2 ** 70})
    assert "64 bits" in error_of(too_big, 422)["message"]
    too_deep = http.post(f"/v1/jobs/{job}/messages", json={"message": nested(70)})
    assert "nested" in error_of(too_deep, 422)["message"]
    sent = [{"plain": [1, 2.5, None, True, "\u00e9"]}, -(2 ** 63), nested(60)]
    for message in sent:
        pushed = http.post(f"/v1/jobs/{job}/messages", json={"message": message})
        assert pushed.status_code == 202, pushed.text
    data = until_done(http, job)
    assert data["exit_status"] == repr(sent)
    assert data["messages"]["received"] == 3

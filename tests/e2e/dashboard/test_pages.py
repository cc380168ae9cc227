"""Every dashboard page over plain HTTP (no browser): status codes, content, filters,
escaping of job-controlled text, sign-in with a token, and `statek dashboard` (read-only)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.e2e.dashboard.conftest import (
    HOSTILE,
    TOKEN,
    jobs_of,
    submit,
    until_status,
    wait_status,
)
from tests.e2e.service.conftest import START_BOUND_S, Worker, clean_env

ROW = re.compile(r'<tr data-job="([A-Z0-9]+)">')


def rows(html: str) -> list[str]:
    return ROW.findall(html)


def test_overview_counts_jobs_by_status_and_agent(http: httpx.Client) -> None:
    page = http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    counts = http.get("/v1/counts").json()["by_status"]
    for status, count in counts.items():
        assert f'data-status-count="{status}">{count}<' in page.text
    assert "demo-helper" in page.text and "demo-dispatcher" in page.text
    assert page.text.count("<svg class=\"chart\"") == 2
    assert 'id="q-ready"' in page.text


def test_job_list_filters_by_status_agent_and_search(http: httpx.Client) -> None:
    helpers = {j["uuid"] for j in jobs_of(http, "demo-helper")}
    page = http.get("/dashboard/jobs", params={"agent": "demo-helper"})
    assert page.status_code == 200
    assert set(rows(page.text)) == helpers and len(helpers) == 8
    done = http.get("/dashboard/jobs", params=[("status", "DONE"), ("agent", "demo-helper")])
    assert set(rows(done.text)) == helpers and "status-suspended" not in done.text
    nothing = http.get("/dashboard/jobs", params={"status": "SUSPENDED", "agent": "demo-helper"})
    assert rows(nothing.text) == [] and "no job matches" in nothing.text
    one = sorted(helpers)[0]
    by_prefix = http.get("/dashboard/jobs", params={"q": one[:-2].lower()})
    assert one in rows(by_prefix.text)
    assert all(found.startswith(one[:-2]) for found in rows(by_prefix.text))
    by_text = http.get("/dashboard/jobs", params={"q": "hello from the demo"})
    assert rows(by_text.text) == [j["uuid"] for j in jobs_of(http, "demo-messenger")]


def test_a_bad_filter_is_named_and_escaped(http: httpx.Client) -> None:
    page = http.get("/dashboard/jobs", params={"status": "<b>NOPE</b>", "cursor": "x"})
    assert page.status_code == 400
    assert "is not one of READY" in page.text and "&lt;B&gt;NOPE&lt;/B&gt;" in page.text
    assert "<B>NOPE" not in page.text and "is not a job position" in page.text


def test_job_page_shows_conversation_code_usage_and_tree(http: httpx.Client) -> None:
    (analyst,) = jobs_of(http, "demo-analyst")
    page = http.get(f"/dashboard/jobs/{analyst['uuid']}")
    assert page.status_code == 200
    text = page.text
    assert '<pre class="code"><code>total = sum(range(10))' in text
    assert "exit({&#39;total&#39;: total, &#39;turns&#39;: 2})" in text
    assert '<div class="message assistant">' in text and "Output:\ntotal is 45" in text
    assert re.search(r"<th>model turns</th><td>2</td>", text)
    assert '<span data-line="0">total is 45</span>' in text
    assert re.search(r'<th class="mono">total</th><td class="mono">45</td>', text)
    assert "model turn 2" in text and "created (READY)" in text
    (dispatcher,) = jobs_of(http, "demo-dispatcher")
    tree = http.get(f"/dashboard/jobs/{dispatcher['uuid']}").text
    helpers = {j["uuid"] for j in jobs_of(http, "demo-helper")}
    listed = set(re.findall(r'<ul id="children">(.*?)</ul>', tree, re.S)[0].split('"'))
    assert helpers <= {part.split("/")[-1] for part in listed}
    child = sorted(helpers)[0]
    up = http.get(f"/dashboard/jobs/{child}").text
    assert f'href="/dashboard/jobs/{dispatcher["uuid"]}"' in up  # its parent, in the tree


def test_job_controlled_text_is_escaped_everywhere(http: httpx.Client) -> None:
    waiter = submit(http, "dash-waiter")
    wait_status(http, waiter, "SUSPENDED")
    page = http.get(f"/dashboard/jobs/{waiter}").text
    assert "<script>window.__xss" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page
    assert "a message pushed to this job" in page  # what it waits on
    chatty = submit(http, "dash-chatty")
    wait_status(http, chatty, "DONE")
    chat = http.get(f"/dashboard/jobs/{chatty}").text
    assert '<div class="message user">' in chat
    assert "Output:\n&lt;script&gt;window.__xss" in chat and "<script>window" not in chat
    found = http.get("/dashboard/jobs", params={"q": "window.__xss"}).text
    assert waiter in rows(found) and chatty in rows(found)
    assert HOSTILE not in found
    http.post(f"/v1/jobs/{waiter}/messages", json={"message": "done"})


def test_unknown_pages_and_static_files(http: httpx.Client) -> None:
    missing = http.get("/dashboard/jobs/NOSUCHJOB0000")
    assert missing.status_code == 404 and "no job with uuid" in missing.text
    script = http.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "EventSource" in script.text and "innerHTML" not in script.text.replace(
        "(never innerHTML)", "")
    assert http.get("/dashboard/static/../app.py").status_code == 404
    assert http.get("/dashboard/static/other.js").status_code == 404
    assert http.get("/dashboard/login").status_code == 200  # no token: nothing to sign in to
    page = http.get(f"/dashboard/jobs/{jobs_of(http, 'demo-analyst')[0]['uuid']}").text
    assert 'id="cancel-button"' not in page  # no token given: read-only


# ---------------------------------------------------------------------------- with a token
def test_a_token_server_asks_for_sign_in_then_allows_writes(token_worker: Worker) -> None:
    with httpx.Client(base_url=token_worker.url, timeout=60) as http:
        first = http.get("/dashboard/jobs")
        assert first.status_code == 303
        assert first.headers["location"].startswith("/dashboard/login?next=")
        assert http.get("/v1/events").status_code == 401  # no cookie, no bearer
        login = http.get("/dashboard/login")
        assert login.status_code == 200 and "· write" not in login.text
        wrong = http.post("/dashboard/login", data={"token": "nope", "next": "/dashboard"})
        assert wrong.status_code == 401 and "not this server" in wrong.text
        signed = http.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/jobs"})
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/jobs"
        cookie = signed.cookies["statek_dashboard"]
        assert TOKEN not in cookie
        headers = {"Authorization": f"Bearer {TOKEN}"}
        waiter = httpx.post(f"{token_worker.url}/v1/jobs", json={"agent": "dash-waiter"},
                            headers=headers).json()["job"]
        page = http.get(f"/dashboard/jobs/{waiter}")
        assert page.status_code == 200 and 'id="cancel-button"' in page.text
        assert 'id="push-form"' in page.text
        no_header = http.post(f"/v1/jobs/{waiter}/cancel")
        assert no_header.status_code == 401  # the cookie alone never writes (CSRF)
        done = http.post(f"/v1/jobs/{waiter}/cancel", headers={"X-Statek-Dashboard": "1"})
        assert done.status_code == 200, done.text
        assert done.json()["cancelled"] is True
        assert http.post("/dashboard/logout").status_code == 303
        http.cookies.clear()
        assert http.get("/dashboard").status_code == 303


def test_sign_in_only_sends_back_to_this_dashboard(token_worker: Worker) -> None:
    with httpx.Client(base_url=token_worker.url, timeout=60) as http:
        for target in ("https://evil.example/", "//evil.example/x", "/v1/jobs"):
            answer = http.post("/dashboard/login", data={"token": TOKEN, "next": target})
            assert answer.headers["location"] == "/dashboard", target


# ---------------------------------------------------------------------------- read-only
class ReadOnlyDashboard:
    """`statek dashboard --port 0` as a subprocess; `url` once it listens."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "statek", "dashboard", "--port", "0"],
            env=clean_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        seen = []
        while True:
            line = lines.get(timeout=START_BOUND_S)
            assert line is not None, "statek dashboard exited:\n" + "".join(seen)
            seen.append(line)
            found = re.search(r"dashboard on (http://\S+)/dashboard", line)
            if found:
                self.url = found.group(1)
                return

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def test_statek_dashboard_serves_read_only_beside_a_running_worker(
        worker: Worker, http: httpx.Client, fleet_dir: Path) -> None:
    reader = ReadOnlyDashboard(fleet_dir)
    try:
        with httpx.Client(base_url=reader.url, timeout=60) as ro:
            overview = ro.get("/dashboard")
            assert overview.status_code == 200 and "read-only" in overview.text
            assert "jobs finished per second" in overview.text
            (analyst,) = jobs_of(http, "demo-analyst")
            page = ro.get(f"/dashboard/jobs/{analyst['uuid']}")
            assert page.status_code == 200 and "total = sum(range(10))" in page.text
            assert 'id="cancel-button"' not in page.text
            listing = ro.get("/dashboard/jobs", params={"agent": "demo-helper"})
            assert len(rows(listing.text)) == 8
            assert ro.get("/dashboard/jobs/NOSUCHJOB0000").status_code == 404
            with ro.stream("GET", "/v1/events") as stream:  # from now on
                assert stream.status_code == 200
                waiter = submit(http, "dash-waiter")  # through the worker, seen by the reader
                until_status(stream, waiter, "SUSPENDED")
            http.post(f"/v1/jobs/{waiter}/messages", json={"message": "go"})
            wait_status(ro, waiter, "DONE")  # the reader's feeder saw the commit
    finally:
        reader.stop()

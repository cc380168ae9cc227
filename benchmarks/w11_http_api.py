"""W11 (HTTP): feeding a running worker over its HTTP API.

* submissions/s: batches of 100 jobs (warmup `exit(i)`: the outbox benchmark's jobs) POSTed
  to /v1/jobs/batch by 4 and by 16 concurrent connections while the worker runs them; target
  >= 10,000 jobs/s. Each answer waits for a commit (an fsync, shared by the requests that
  arrive together: statek.server.commit). The outbox rate (benchmarks.outbox, calls of 100)
  is measured in the same run, side by side;
* submit -> first step: one job at a time, from sending POST /v1/jobs to the first model
  turn of the job as the worker recorded it (see `_first_step_latency`); target <= 10 ms
  median. Reported beside it: when the client saw the step on the event stream, and when the
  POST was answered (after its commit);
* (the worker's W1 rate while a producer feeds it is measured by benchmarks.outbox, which
  counts completions in the worker; this file's earlier figure timed the last job of a batch
  that had mostly run while it was being submitted, and gave 0.2x-3x: removed);
* the same with `Prefer: respond-async` (keys "async_..."): each batch appended fsync'd to
  the worker's own outbox segment and answered with outbox ids; the loop applies them
  (statek.server.accept). Both ways run interleaved against the same worker;
* the HTTP path alone: the same batches against the API served with no worker loop (nothing
  runs the jobs), 16 connections: what accepting a job costs the worker's process by itself,
  apart from running it.

Beside each submission rate: "done" jobs/s (from the first POST to the last of those jobs
DONE; each measurement starts with the worker idle) and CPU per accepted job of the worker
process (accepting, applying and running it: `worker_cpu_us`) and of this client process
(`client_cpu_us`), which the machine's other work moves far less than the rates.

Each figure is the median of 3 runs, each against a fresh worker process.

`--front`: the same batches POSTed to `statek serve` (the API in a process of its own,
statek.server.front: it appends each request's jobs to its own outbox segment and answers
202) while the worker runs them; CPU per accepted job of the front and of the worker;
submit -> first step through the front (the event stream forwarded to the worker's API);
the outbox rate (benchmarks.outbox) in the same run. Written to `...-w11-http-front.json`.

    python -m benchmarks.w11_http_api [--quick] [--front]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.service.conftest import Front, Worker, clean_env, prepare_store

RESULTS = Path(__file__).parent / "results"
BATCH = 100


async def _submit_rate(url: str, jobs: int, connections: int = 4,
                       respond_async: bool = False) -> float:
    body = json.dumps({"agent": "helper", "vars_batch": [{"i": i} for i in range(BATCH)],
                       "params": {"warmup_code": "exit(i)"}})
    headers = {"Content-Type": "application/json"}
    if respond_async:  # accepted into the worker's outbox (statek.server.accept)
        headers["Prefer"] = "respond-async"
    expected = 202 if respond_async else 201
    batches = jobs // BATCH
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one_connection(share: int) -> None:
            for _ in range(share):
                answer = await client.post("/v1/jobs/batch", content=body, headers=headers)
                assert answer.status_code == expected, answer.text

        began = time.perf_counter()
        await asyncio.gather(*(one_connection(batches // connections)
                               for _ in range(connections)))
        return (batches // connections) * connections * BATCH / (time.perf_counter() - began)


async def _first_step_latency(url: str, samples: int,
                              respond_async: bool = False) -> dict[str, list[float]]:
    """One job at a time, seconds from sending POST /v1/jobs to: its first model turn as the
    worker recorded it ("first_step": the `at` wall-clock time of the turn in its chat log,
    written within the first step, as the outbox benchmark's stamp; both processes read the
    same clock), its first status change after READY arriving on the event stream
    ("event"), and the answer to the POST, which comes after a commit ("ack")."""
    seen: set[str] = set()
    fresh: asyncio.Queue[float] = asyncio.Queue()  # first event of each job, in order

    async def read_events(stream: httpx.Response) -> None:
        async for line in stream.aiter_lines():
            if line.startswith("data: ") and '"READY"' not in line:
                job = json.loads(line[6:])["job"]
                if job not in seen:  # events carry the job's uuid, not an outbox id
                    seen.add(job)
                    fresh.put_nowait(time.perf_counter())

    out: dict[str, list[float]] = {"first_step": [], "event": [], "ack": []}
    headers = {"Prefer": "respond-async"} if respond_async else {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client, client.stream(
            "GET", "/v1/events") as stream:
        reader = asyncio.create_task(read_events(stream))
        for _ in range(samples):
            sent_at, began = time.time(), time.perf_counter()
            answer = await client.post("/v1/jobs", json={"agent": "helper"}, headers=headers)
            out["ack"].append(time.perf_counter() - began)
            job = answer.json()["job"]
            out["event"].append(await asyncio.wait_for(fresh.get(), 60) - began)
            turns = (await client.get(f"/v1/jobs/{job}")).json()["chat_log"]
            out["first_step"].append(turns[0]["at"] - sent_at)
        reader.cancel()
    return out


def _wait_idle(url: str, expected: int, bound_s: float = 600.0) -> None:
    """Until the store holds the `expected` jobs and the newest is DONE (jobs of one agent
    run in the order they were made), with failure bound `bound_s`."""
    deadline = time.monotonic() + bound_s
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            page = client.get("/v1/jobs", params={"order": "desc", "limit": 1}).json()
            if page["total"] >= expected and page["jobs"][0]["status"] == "DONE":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not run its backlog: {page}")
            time.sleep(0.2)


SERVER_ONLY = """
import asyncio, sys
import statek
from statek import store
from statek.server.app import start_server
statek.open_default_store()
statek.Agent("helper", metadata={"MODEL": "scripted/any"})
statek.commit_all()
async def main():
    server = await start_server(store.settings().model_copy(update={"http_port": 0}))
    print("http api on", server.url, file=sys.stderr, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _server_only_rate(jobs: int) -> float:
    """Batches against the API with no worker loop in its process (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="statek-w11-") as root:
        data = Path(root) / "data"
        data.mkdir()
        server = subprocess.Popen([sys.executable, "-c", SERVER_ONLY], env=clean_env(data),
                                  stderr=subprocess.PIPE, text=True)
        try:
            assert server.stderr is not None
            for line in server.stderr:  # failure bound: the process ends, and so the loop
                if "http api on " in line:
                    url = line.split("http api on ")[1].strip()
                    break
            else:
                raise RuntimeError("the API process ended before listening")
            return asyncio.run(_submit_rate(url, jobs, 16))
        finally:
            server.terminate()
            server.wait(timeout=60)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process `pid` has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(worker: Worker, jobs: int, connections: int, respond_async: bool,
              made: list[int], front: Front | None = None) -> dict[str, float]:
    """One submission rate from an idle worker (to its API, or to `front`), then until the
    worker ran those jobs: the rates and CPU per job of the worker, of the front and of
    this (client) process."""
    count = jobs // BATCH // connections * connections * BATCH
    front_cpu = 0.0 if front is None else _cpu_s(front.proc.pid)
    cpu, client_cpu, began = _cpu_s(worker.proc.pid), time.process_time(), time.perf_counter()
    url = worker.url if front is None else front.url
    rate = asyncio.run(_submit_rate(url, jobs, connections, respond_async))
    client_cpu = time.process_time() - client_cpu
    front_cpu = 0.0 if front is None else _cpu_s(front.proc.pid) - front_cpu
    made[0] += count
    _wait_idle(worker.url, made[0])
    found = {"rate": rate, "done": count / (time.perf_counter() - began),
             "worker_cpu_us": (_cpu_s(worker.proc.pid) - cpu) / count * 1e6,
             "client_cpu_us": client_cpu / count * 1e6}
    if front is not None:
        found["front_cpu_us"] = front_cpu / count * 1e6
    return found


def _p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)]


def _one_run(quick: bool) -> dict[str, Any]:
    from benchmarks.outbox import _submit_rates

    jobs = 4_000 if quick else 20_000
    with tempfile.TemporaryDirectory(prefix="statek-w11-") as root:
        data = Path(root) / "data"
        prepare_store(data)
        worker = Worker(data, "--concurrency", "1000")
        try:
            # the two ways of accepting, interleaved in one worker (same load, same store),
            # each from an idle worker (latency too, not behind a backlog)
            made = [0]
            sync_4 = _measured(worker, jobs, 4, False, made)
            async_4 = _measured(worker, jobs, 4, True, made)
            sync_16 = _measured(worker, jobs, 16, False, made)
            async_16 = _measured(worker, jobs, 16, True, made)
            rate, rate_async = sync_4["rate"], async_4["rate"]
            rate_16, rate_16_async = sync_16["rate"], async_16["rate"]
            samples = 50 if quick else 200
            latency = asyncio.run(_first_step_latency(worker.url, samples))
            latency_async = asyncio.run(_first_step_latency(worker.url, samples, True))
        finally:
            worker.stop()
    outbox = _submit_rates(quick)[0]
    alone_path = _server_only_rate(jobs)
    per_way = {f"{way}_{key}": value
               for way, found in (("sync_4", sync_4), ("async_4", async_4),
                                  ("sync_16", sync_16), ("async_16", async_16))
               for key, value in found.items() if key != "rate"}
    return {**per_way, "submit_jobs_per_s": rate, "submit_jobs_per_s_16_connections": rate_16,
            "outbox_jobs_per_s_batch_100": outbox, "http_to_outbox": rate / outbox,
            "http_path_alone_jobs_per_s_16_connections": alone_path,
            "first_step_ms_median": statistics.median(latency["first_step"]) * 1e3,
            "first_step_ms_p90": _p90(latency["first_step"]) * 1e3,
            "event_ms_median": statistics.median(latency["event"]) * 1e3,
            "ack_ms_median": statistics.median(latency["ack"]) * 1e3,
            "async_submit_jobs_per_s": rate_async,
            "async_submit_jobs_per_s_16_connections": rate_16_async,
            "async_first_step_ms_median": statistics.median(latency_async["first_step"]) * 1e3,
            "async_first_step_ms_p90": _p90(latency_async["first_step"]) * 1e3,
            "async_event_ms_median": statistics.median(latency_async["event"]) * 1e3,
            "async_ack_ms_median": statistics.median(latency_async["ack"]) * 1e3}


def _front_run(quick: bool) -> dict[str, Any]:
    """Batches through `statek serve` while the worker runs them (see the module doc)."""
    from benchmarks.outbox import _submit_rates

    jobs = 4_000 if quick else 20_000
    with tempfile.TemporaryDirectory(prefix="statek-w11-") as root:
        data = Path(root) / "data"
        prepare_store(data)
        worker = Worker(data, "--concurrency", "1000")
        front = Front(data)
        try:
            made = [0]
            by_connections = {n: _measured(worker, jobs, n, True, made, front) for n in (4, 16)}
            samples = 50 if quick else 200
            latency = asyncio.run(_first_step_latency(front.url, samples, True))
        finally:
            front.stop()
            worker.stop()
    outbox = _submit_rates(quick)[0]
    found: dict[str, Any] = {f"front_{n}_{key}": value for n, measured in by_connections.items()
                             for key, value in measured.items() if key != "rate"}
    return {**found, "front_submit_jobs_per_s": by_connections[4]["rate"],
            "front_submit_jobs_per_s_16_connections": by_connections[16]["rate"],
            "outbox_jobs_per_s_batch_100": outbox,
            "front_to_outbox": by_connections[16]["rate"] / outbox,
            "front_first_step_ms_median": statistics.median(latency["first_step"]) * 1e3,
            "front_first_step_ms_p90": _p90(latency["first_step"]) * 1e3,
            "front_event_ms_median": statistics.median(latency["event"]) * 1e3,
            "front_ack_ms_median": statistics.median(latency["ack"]) * 1e3}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--front", action="store_true",
                        help="measure through `statek serve` (a front process) instead")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    runs = [(_front_run if args.front else _one_run)(args.quick) for _ in range(3)]
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    from statek._speedups import IMPLEMENTATION

    result = {"workload": "W11-http", "date": datetime.date.today().isoformat(),
              "python": sys.version.split()[0], "kernels": IMPLEMENTATION,
              "quick": args.quick, "load_before": load, "load_after": os.getloadavg(),
              "medians_of_3": medians, "runs": runs,
              "targets": {"submit_jobs_per_s": ">= 10000", "first_step_ms_median": "<= 10"}}
    RESULTS.mkdir(exist_ok=True)
    name = "w11-http-front" if args.front else "w11-http-accept"
    out = RESULTS / f"{result['date']}-{name}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

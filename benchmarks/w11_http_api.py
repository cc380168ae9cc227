"""W11 (HTTP): feeding a running worker over its HTTP API.

* submissions/s: batches of 100 jobs POSTed to /v1/jobs/batch by 4 concurrent connections
  while the worker (offline provider) runs them; target >= 10,000 jobs/s;
* submit -> first step: one job at a time, from sending POST /v1/jobs to the job's first
  status change after READY on its event stream (the first step has ended by then: an upper
  bound); target <= 10 ms median;
* the worker's W1-style rate (jobs completed/s) with and without a producer submitting at
  full speed over HTTP.

Each figure is the median of 3 runs, each against a fresh worker process.

    python -m benchmarks.w11_http_api [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service.conftest import Worker, prepare_store

RESULTS = Path(__file__).parent / "results"
BATCH = 100


async def _submit_rate(url: str, jobs: int, connections: int = 4) -> float:
    body = json.dumps({"agent": "helper", "vars_batch": [{"i": i} for i in range(BATCH)]})
    headers = {"Content-Type": "application/json"}
    batches = jobs // BATCH
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one_connection(share: int) -> None:
            for _ in range(share):
                answer = await client.post("/v1/jobs/batch", content=body, headers=headers)
                assert answer.status_code == 201, answer.text

        began = time.perf_counter()
        await asyncio.gather(*(one_connection(batches // connections)
                               for _ in range(connections)))
        return (batches // connections) * connections * BATCH / (time.perf_counter() - began)


def _first_step_latency(url: str, samples: int) -> list[float]:
    """Seconds from sending a submission to its first status change after READY."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as client, client.stream(
            "GET", "/v1/events") as stream:
        lines = stream.iter_lines()
        for _ in range(samples):
            began = time.perf_counter()
            job = client.post("/v1/jobs", json={"agent": "helper"}).json()["job"]
            for line in lines:
                if line.startswith("data: ") and job in line and '"READY"' not in line:
                    out.append(time.perf_counter() - began)
                    break
    return out


async def _completion_rate(url: str, jobs: int, with_producer: bool) -> float:
    """Jobs completed/s by the worker for `jobs` jobs submitted up front, with or without
    a producer submitting more at full speed meanwhile."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        ids: list[str] = []
        for _ in range(0, jobs, 1000):
            answer = await client.post("/v1/jobs/batch", json={
                "agent": "helper", "vars_batch": [{"i": i} for i in range(1000)],
                "params": {"warmup_code": "exit(i)"}})
            ids.extend(answer.json()["jobs"])
        began = time.perf_counter()
        stop = asyncio.Event()

        async def producer() -> None:
            body = {"agent": "helper", "vars_batch": [{}] * BATCH,
                    "params": {"warmup_code": "exit(0)"}}
            while not stop.is_set():
                await client.post("/v1/jobs/batch", json=body)

        feeding = asyncio.create_task(producer()) if with_producer else None
        while True:  # done when the last of ours is (the worker runs them in order)
            job = (await client.get(f"/v1/jobs/{ids[-1]}")).json()
            if job["status"] == "DONE":
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        stop.set()
        if feeding is not None:
            await feeding
        return jobs / elapsed


def _one_run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="statek-w11-") as root:
        data = Path(root) / "data"
        prepare_store(data)
        worker = Worker(data, "--concurrency", "1000")
        try:
            rate = asyncio.run(_submit_rate(worker.url, 4_000 if quick else 20_000))
            latency = _first_step_latency(worker.url, 50 if quick else 200)
            alone = asyncio.run(_completion_rate(worker.url, 2_000 if quick else 10_000, False))
            fed = asyncio.run(_completion_rate(worker.url, 2_000 if quick else 10_000, True))
        finally:
            worker.stop()
    return {"submit_jobs_per_s": rate, "first_step_ms_median": statistics.median(latency) * 1e3,
            "first_step_ms_p90": sorted(latency)[int(len(latency) * 0.9)] * 1e3,
            "completed_per_s_alone": alone, "completed_per_s_with_producer": fed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs = [_one_run(args.quick) for _ in range(3)]
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    medians["worker_rate_kept"] = (medians["completed_per_s_with_producer"]
                                   / medians["completed_per_s_alone"])
    from statek._speedups import IMPLEMENTATION

    result = {"workload": "W11-http", "date": datetime.date.today().isoformat(),
              "python": sys.version.split()[0], "kernels": IMPLEMENTATION,
              "quick": args.quick, "medians_of_3": medians, "runs": runs,
              "targets": {"submit_jobs_per_s": ">= 10000", "first_step_ms_median": "<= 10",
                          "worker_rate_kept": ">= 0.8"}}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['date']}-w11-http{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

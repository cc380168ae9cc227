"""W9 and W6 over real HTTP: two-turn jobs whose model is the built-in OpenAI-compatible
provider talking to a local mock server in another process.

    python -m benchmarks.w9_http                 # W9 and W6-HTTP, median of 3, ceiling by wrk
    python -m benchmarks.w9_http --quick         # tiny sizes, 1 repeat (a smoke run, ~30 s)
    python -m benchmarks.w9_http --only W9 --repeats 5 --json w9.json

A job's agent has metadata {"MODEL": "openai/mock"} and the worker's settings point
`openai_base_url` at the mock (benchmarks/servers/mock_openai.py), which answers a request
holding no assistant message with `x = 1` and one holding one with `exit(x)`: every job makes
two model calls over HTTP and exits with 1. Each measurement is a fresh worker process
(`--one`): it creates the jobs (untimed), runs them through `start_statek(...,
auto_terminate=True)` (the real worker path; `--path jobs_loop` for `run_jobs_loop` under
plain asyncio), checks every job exited with 1, and reports model calls/s (calls counted by
the server), the worker's process CPU time per call, and the part of it spent on the event
loop's thread (a client such as pyreqwest does its HTTP work on threads of its own).

  W9      zero-latency server, max_concurrency 1000 (target >= 3,000 calls/s on 2 cores)
  W6-HTTP the server answers after 100 ms, max_concurrency 5000: calls/s against the ideal
          min(max_concurrency / latency, W9's calls/s at zero latency in this run)
  ceiling the mock server's own rate under `wrk` (1000 connections, POSTs of the bodies statek
          sends); W9 is also given as a fraction of it.

Server, worker and load generator share the machine's two cores (and whatever else runs on
it): compare figures measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._harness import fresh_store, print_table
from benchmarks.servers import mock_openai

PREFIX = "bench"
RESULTS = Path(__file__).resolve().parent / "results" / "w9_http.json"
PATHS = ("start_statek", "jobs_loop")
#: The provider: statek's built-in OpenAI-compatible one over each HTTP transport it ships
#: ("asyncio", statek's own HTTP/1.1 client and the default; "aiohttp", always installed;
#: "pyreqwest", with statek[fast]; httpx was replaced: its pool cost ~3.8 ms CPU per call
#: with 1000 calls queued); "offline" answers the same replies
#: in-process with the scripted provider (no HTTP: the worker's own cost).
HTTP_CLIENTS = ("asyncio", "aiohttp", "pyreqwest")
CLIENTS = (*HTTP_CLIENTS, "offline")


# ----------------------------------------------------------------------------- one run


def run_jobs(url: str, n: int, concurrency: int, path: str, client: str = "aiohttp",
             latency: float = 0.0, pool: int | None = None) -> dict[str, Any]:
    """N two-turn jobs against the mock at `url`, run to the end in this process."""
    import dbzero as db0

    import statek

    settings = statek.StatekSettings.build(
        openai_base_url=url, openai_api_key=None, provider_max_retries=0,
        provider_timeout=120.0, use_uvloop=path == "start_statek",
        provider_http_client="auto")
    with fresh_store(PREFIX):
        statek.init(settings)
        if client in HTTP_CLIENTS:  # registered here: settings name only some of the clients
            _use_pool(url, pool or 100, client)
        elif client == "offline":
            _use_offline(latency)
        agent = statek.Agent("bench-w9", "", metadata={"MODEL": "openai/mock"})
        ids = statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(n)])
        db0.commit()
        gc.collect()
        cpu, thread_cpu, began = time.process_time(), time.thread_time(), time.perf_counter()
        if path == "start_statek":
            stats = statek.start_statek([agent], max_concurrency=concurrency,
                                        settings=settings, auto_terminate=True)
        else:
            from statek.executors.utils import run_jobs_loop

            stats = asyncio.run(run_jobs_loop(concurrency, queue_prefixes=[PREFIX],
                                              auto_terminate=True))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        thread_cpu = time.thread_time() - thread_cpu
        outcome = _outcomes(ids)
    return {"n": n, "max_concurrency": concurrency, "path": path, "client": client,
            "pool": pool or 100,
            "loop_s": elapsed,
            "cpu_s": cpu, "loop_thread_cpu_s": thread_cpu, "loop": _loop_kind(path, settings),
            "jobs_ok": outcome["ok"],
            "first_error": outcome["first_error"], "steps_done": stats.steps_done,
            "steps_failed": stats.steps_failed, "max_in_flight": stats.max_in_flight,
            "commits": stats.commits, "python": sys.version.split()[0],
            "json": _json_backend(), "sniffio": _has("sniffio")}


def _use_pool(url: str, pool: int, http_client: str) -> None:
    """Register the built-in provider as "openai" (the name the jobs' MODEL picks), configured
    as in `run_jobs`, with a pool of `pool` connections."""
    from statek.providers import OpenAICompatibleProvider, add_provider

    add_provider("openai", OpenAICompatibleProvider(url, None, name="openai", max_retries=0,
                                                    timeout=120.0, max_connections=pool,
                                                    http_client=http_client))


def _use_offline(latency: float) -> None:
    """Register, as "openai", a scripted provider answering what the mock server answers,
    after the server's delay."""
    from statek.providers import ScriptedProvider, add_provider

    def reply(request: Any) -> str:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return mock_openai.DEFAULT_REPLIES[turn % len(mock_openai.DEFAULT_REPLIES)]

    add_provider("openai", ScriptedProvider(reply, latency, name="openai"))


def _outcomes(ids: Sequence[str]) -> dict[str, Any]:
    """How many jobs exited with 1, and the first failure seen (untimed)."""
    import dbzero as db0

    ok, first_error = 0, None
    for uuid in ids:
        job = db0.fetch(uuid)
        if job.exit_status == 1:
            ok += 1
        elif first_error is None:
            first_error = f"{job.status}: {job.error}"
    return {"ok": ok, "first_error": first_error}


def _loop_kind(path: str, settings: Any) -> str:
    if path == "start_statek" and settings.use_uvloop and _has("uvloop"):
        return "uvloop"
    return "asyncio"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _json_backend() -> str:
    from statek import _json

    return str(_json.JSON_BACKEND)


# ----------------------------------------------------------------------------- the ceiling


def ceiling(server: mock_openai.MockServer, seconds: float, connections: int) -> dict[str, Any]:
    """The mock server's rate under wrk (one thread, `connections` keep-alive connections)
    POSTing the two bodies statek sends for a job, alternately."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk not installed (apt-get install wrk)"}
    from benchmarks.http_clients import requests_for_a_job
    from statek.providers.openai_compat import OpenAICompatibleProvider

    provider = OpenAICompatibleProvider(server.url, None)
    bodies = [json.dumps(provider.build_body(r), separators=(",", ":"))
              for r in requests_for_a_job()]
    script = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
              f"local bodies = {{{', '.join(_lua_string(b) for b in bodies)}}}\n"
              "local n = 0\nrequest = function()\n  n = n + 1\n"
              '  return wrk.format(nil, "/v1/chat/completions", nil, bodies[(n % 2) + 1])\n'
              "end\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        before = server.stats()
        done = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s",
                               lua.name, f"http://127.0.0.1:{server.port}/"],
                              capture_output=True, text=True, timeout=seconds + 60)
        after = server.stats()
    rate = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
    if done.returncode != 0 or rate is None or "Non-2xx" in done.stdout:
        return {"error": f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}"}
    calls = after["requests"] - before["requests"]
    return {"calls_per_s": float(rate.group(1)), "connections": connections,
            "seconds": seconds, "server_cpu_us_per_call":
            (after["cpu_s"] - before["cpu_s"]) / max(calls, 1) * 1e6}


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ----------------------------------------------------------------------------- the runs


def measure(workload: str, server: mock_openai.MockServer, n: int, concurrency: int,
            path: str, clients: Sequence[str], repeats: int, pool: int | None = None,
            timeout: float = 1800.0) -> list[dict[str, Any]]:
    """`repeats` fresh worker processes per client against `server` (clients alternate);
    one row per client with the medians and every run."""
    runs: dict[str, list[dict[str, Any]]] = {client: [] for client in clients}
    for repeat in range(repeats):
        for client in clients:
            print(f"[{workload} {repeat + 1}/{repeats}] {n} jobs, C={concurrency}, {path}, "
                  f"{client}", file=sys.stderr, flush=True)
            runs[client].append(_one(server, n, concurrency, path, client, pool, timeout))
    return [_row(workload, server, got) for got in runs.values()]


def _one(server: mock_openai.MockServer, n: int, concurrency: int, path: str,
         client: str, pool: int | None, timeout: float) -> dict[str, Any]:
    """One worker process; a run past `timeout` is killed and reported with the calls the
    server answered until then (`timed_out`, no CPU figure)."""
    before = server.stats()
    began = time.perf_counter()
    try:
        got = _worker_process(["--url", server.url, "--n", str(n), "--concurrency",
                               str(concurrency), "--path", path, "--clients", client,
                               "--latency", repr(server.delay),
                               *(["--pool", str(pool)] if pool else [])], timeout)
    except subprocess.TimeoutExpired:
        elapsed = time.perf_counter() - began
        calls = server.stats()["requests"] - before["requests"]
        print(f"    killed after {elapsed:.0f} s: {calls} calls answered", file=sys.stderr,
              flush=True)
        return {"n": n, "max_concurrency": concurrency, "path": path, "client": client,
                "pool": pool or 100, "loop": "?", "timed_out": True, "loop_s": elapsed,
                "jobs_ok": 0, "first_error": f"timed out after {elapsed:.0f} s",
                "calls": calls, "calls_per_s": calls / elapsed,
                "cpu_us_per_call": float("nan"), "loop_cpu_us_per_call": float("nan"),
                "server_cpu_us_per_call": float("nan")}
    after = server.stats()
    calls = after["requests"] - before["requests"]
    if client == "offline":
        calls = 2 * got["jobs_ok"]  # the server saw none
    got.update(calls=calls, calls_per_s=calls / got["loop_s"],
               cpu_us_per_call=got["cpu_s"] / max(calls, 1) * 1e6,
               loop_cpu_us_per_call=got["loop_thread_cpu_s"] / max(calls, 1) * 1e6,
               server_cpu_us_per_call=(after["cpu_s"] - before["cpu_s"]) / max(calls, 1) * 1e6)
    if got["jobs_ok"] != n:
        print(f"    {n - got['jobs_ok']} jobs failed; first: {got['first_error']}",
              file=sys.stderr, flush=True)
    return got


def _worker_process(args: list[str], timeout: float) -> dict[str, Any]:
    """`python -m benchmarks.w9_http --one ARGS` and the JSON line it prints last."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.w9_http", "--one", *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _row(workload: str, server: mock_openai.MockServer,
         runs: list[dict[str, Any]]) -> dict[str, Any]:
    first = next((r for r in runs if not r.get("timed_out")), runs[0])
    medians = {key: statistics.median(r[key] for r in runs)
               for key in ("calls_per_s", "cpu_us_per_call", "loop_cpu_us_per_call",
                           "server_cpu_us_per_call")}
    return {"workload": workload, "n": first["n"], "max_concurrency": first["max_concurrency"],
            "path": first["path"], "client": first["client"], "loop": first["loop"],
            "pool": first["pool"],
            "repeats": len(runs), "latency_s": server.delay,
            "timed_out": sum(1 for r in runs if r.get("timed_out")),
            "jobs_failed": sum(r["n"] - r["jobs_ok"] for r in runs), **medians, "runs": runs}


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """The ceiling, W9 and W6-HTTP as asked; one dict for the table and the JSON."""
    out: dict[str, Any] = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                           "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(),
                           "rows": []}
    with mock_openai.running() as server:
        if not args.no_ceiling:
            print("[ceiling] wrk", file=sys.stderr, flush=True)
            out["ceiling"] = ceiling(server, args.ceiling_seconds, 1000)
        if "W9" in args.only:
            out["rows"] += measure("W9", server, args.n, args.concurrency, args.path,
                                   args.clients, args.repeats, args.pool, args.run_timeout)
    if "W6" in args.only:
        with mock_openai.running(delay=args.latency) as slow:
            out["rows"] += measure("W6-HTTP", slow, args.w6_n, args.w6_concurrency,
                                   args.path, args.clients, args.repeats,
                                   args.w6_pool or args.pool, args.run_timeout)
    _derive(out, args.latency)
    out["load_avg_after"] = os.getloadavg()
    return out


def _derive(out: dict[str, Any], latency: float) -> None:
    """W9 as a fraction of the ceiling; W6-HTTP as a fraction of its ideal (per client)."""
    rows = {(r["workload"], r["client"]): r for r in out["rows"]}
    top = out.get("ceiling", {}).get("calls_per_s")
    for (workload, client), row in rows.items():
        if workload == "W9" and top and client != "offline":
            row["of_ceiling"] = row["calls_per_s"] / top
        if workload == "W6-HTTP":
            # a job in flight awaits one call at a time
            bound = row["max_concurrency"] / latency if latency > 0 else float("inf")
            w9 = rows.get(("W9", client))
            row["ideal_calls_per_s"] = min(bound, w9["calls_per_s"] if w9 else bound)
            row["of_ideal"] = row["calls_per_s"] / row["ideal_calls_per_s"]


def print_report(out: dict[str, Any]) -> None:
    top = out.get("ceiling", {})
    print()
    if "calls_per_s" in top:
        print(f"mock server ceiling (wrk, {top['connections']} connections, "
              f"{top['seconds']:g} s): {top['calls_per_s']:,.0f} calls/s, server CPU "
              f"{top['server_cpu_us_per_call']:.0f} µs/call")
    elif top:
        print(f"mock server ceiling: {top['error']}")
    rows = []
    for r in out["rows"]:
        share = r.get("of_ceiling", r.get("of_ideal"))
        share_of = "of ceiling" if "of_ceiling" in r else "of ideal"
        rows.append([r["workload"], f"{r['n']} jobs C={r['max_concurrency']} "
                     f"latency={r['latency_s']:g}s", f"{r['path']} ({r['loop']})",
                     r["client"] if r["client"] == "offline" else f"{r['client']} ({r['pool']})",
                     f"{r['calls_per_s']:,.0f}",
                     f"{r['cpu_us_per_call']:.0f} ({r['loop_cpu_us_per_call']:.0f})",
                     f"{r['server_cpu_us_per_call']:.0f}",
                     "-" if share is None else f"{share:.1%} {share_of}",
                     f"{r['jobs_failed']}" + (f" ({r['timed_out']} runs timed out)"
                                              if r["timed_out"] else ""), r["repeats"]])
    print_table(["workload", "params", "worker", "client (pool)", "calls/s",
                 "worker CPU µs/call (loop thread)",
                 "server CPU µs/call", "ratio", "failed jobs", "repeats"], rows)
    print(f"(medians; {out['cpus']} CPUs shared by server, worker and anything else; load "
          f"average {out['load_avg_before'][0]:.2f} before, {out['load_avg_after'][0]:.2f} "
          "after)")


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 jobs each, 1 repeat, a 1 s ceiling (a smoke run)")
    parser.add_argument("--only", default="W9,W6", help="W9, W6 or both (comma-separated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=10_000, help="W9 jobs (2 calls each)")
    parser.add_argument("--concurrency", type=int, default=1000, help="W9 max_concurrency")
    parser.add_argument("--w6-n", type=int, default=5000, help="W6-HTTP jobs")
    parser.add_argument("--w6-concurrency", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1, help="W6-HTTP server delay (s)")
    parser.add_argument("--path", choices=PATHS, default="start_statek")
    parser.add_argument("--clients", default=None,
                        help=f"any of {', '.join(CLIENTS)}, comma-separated (default: all)")
    parser.add_argument("--pool", type=int, default=None,
                        help="connections per provider (default: 100, as the built-in ships)")
    parser.add_argument("--w6-pool", type=int, default=None,
                        help="connections per provider in W6-HTTP (default: --pool)")
    parser.add_argument("--run-timeout", type=float, default=1800.0,
                        help="seconds one worker process may take (then killed, reported)")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--json", nargs="?", const=str(RESULTS), default=None,
                        help=f"also write every figure as JSON (default path {RESULTS})")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.repeats, args.n, args.concurrency, args.w6_n, args.w6_concurrency,
           args.pool or 1, args.w6_pool or 1) < 1:
        parser.error("--repeats, --n, --concurrency, --w6-n, --w6-concurrency, --pool, "
                     "--w6-pool must be >= 1")
    if args.latency < 0 or args.ceiling_seconds <= 0 or args.run_timeout <= 0:
        parser.error("--latency must be >= 0, --ceiling-seconds and --run-timeout > 0")
    args.only = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    if not args.only or args.only - {"W9", "W6"}:
        parser.error(f"--only takes W9 and/or W6, got {sorted(args.only)}")
    args.clients = _clients(parser, args.clients)
    if args.one:
        if not args.url or len(args.clients) != 1:
            parser.error("--one needs --url and one client")
        print(json.dumps(run_jobs(args.url, args.n, args.concurrency, args.path,
                                  args.clients[0], args.latency, args.pool)))
        return
    if args.quick:
        args.n = args.w6_n = 200
        args.repeats, args.ceiling_seconds = 1, 1.0
    out = run_all(args)
    print_report(out)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as file:
            json.dump(out, file, indent=1)
        print(f"written to {args.json}")


def _clients(parser: argparse.ArgumentParser, asked: str | None) -> list[str]:
    if asked is None:
        from statek.providers.transports import available_clients

        return [c for c in CLIENTS if c == "offline" or c in available_clients()]
    clients = [c.strip() for c in asked.split(",") if c.strip()]
    if not clients or set(clients) - set(CLIENTS):
        parser.error(f"--clients takes {', '.join(CLIENTS)}, got {asked!r}")
    return clients


if __name__ == "__main__":
    main()

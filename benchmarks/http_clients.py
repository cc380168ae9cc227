"""HTTP clients for the providers, compared in a plain request loop against the mock server.

    python -m benchmarks.http_clients                      # every client, median of 3
    python -m benchmarks.http_clients --quick
    python -m benchmarks.http_clients --clients httpx,aiohttp --n 20000 --concurrency 1000

One process runs the mock server (benchmarks/servers/mock_openai.py); each measurement is a
fresh client process (`--one CLIENT`) that opens its connections with one untimed round of
`concurrency` requests, then sends `n` chat-completion requests from `concurrency` coroutines
and reports calls/s and its own CPU time per call. Repeats alternate the clients so drift
hits all alike. The server's CPU per call comes from its `/stats` before and after.

Clients are KIND[-cN][-sM]: a pool of N connections (default 100, what the providers ship),
at most M requests in flight through the client (a semaphore in front of it; default none):
  statek          OpenAICompatibleProvider.complete: encoding, aiohttp (shipped), parsing
  statek_aiohttp  the same encoding and parsing around a bare aiohttp session
  httpx           httpx.AsyncClient.post + .content, nothing else
  aiohttp         aiohttp.ClientSession.post + .read()
(aiohttp ones only when aiohttp is installed: pip install -e '.[bench]').
Bodies are what statek sends for a two-turn job (system prompt, history), alternating turns.
Client and server share the machine's cores: figures are relative to one another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks._harness import print_table, run_isolated
from benchmarks.servers import mock_openai

CLIENTS = ("statek", "statek-s100", "statek_aiohttp", "httpx", "httpx-c1000", "httpx-s100",
           "httpx-c20-s20", "aiohttp", "aiohttp-c1000")
KINDS = ("statek", "statek_aiohttp", "httpx", "aiohttp")
DEFAULT_POOL = 100
Send = Callable[[int], Awaitable[None]]


def requests_for_a_job() -> list[Any]:
    """The two ChatRequests statek sends for a job of the W9 kind (first and second turn)."""
    from statek.execution.conversation import CODE_FIRST_GUIDE
    from statek.providers.types import ChatMessage, ChatRequest

    first = (ChatMessage("user", "Variables in your session: i = 1"),)
    second = (*first, ChatMessage("assistant", "x = 1"), ChatMessage("user", "(no output)"))
    return [ChatRequest("mock", CODE_FIRST_GUIDE, first),
            ChatRequest("mock", CODE_FIRST_GUIDE, second)]


def parse_client(client: str) -> tuple[str, int, int]:
    """(kind, pool size, in-flight bound or 0) from "kind[-cPOOL][-sBOUND]"."""
    kind, *options = client.split("-")
    pool, bound = DEFAULT_POOL, 0
    for option in options:
        if option[:1] not in ("c", "s") or not option[1:].isdigit() or int(option[1:]) < 1:
            kind = ""
            break
        if option[0] == "c":
            pool = int(option[1:])
        else:
            bound = int(option[1:])
    if kind not in KINDS:
        raise ValueError(f"bad client {client!r}: KIND[-cPOOL][-sBOUND], KIND one of "
                         f"{', '.join(KINDS)}; e.g. {', '.join(CLIENTS)}")
    return kind, pool, bound


def _bounded(send: Send, bound: int) -> Send:
    """`send` with at most `bound` calls in flight (0: no bound): queue here, cheaply, instead
    of in the client's connection pool."""
    if not bound:
        return send
    gate = asyncio.Semaphore(bound)

    async def send_bounded(i: int) -> None:
        async with gate:
            await send(i)
    return send_bounded


async def _sender(client: str, base_url: str, stack: Any) -> Send:
    """A coroutine function sending request i (alternating the two turns) with `client`."""
    from statek.providers.openai_compat import OpenAICompatibleProvider

    kind, pool, bound = parse_client(client)
    provider = OpenAICompatibleProvider(base_url, None, name="bench", max_retries=0,
                                        max_connections=pool)
    chat = requests_for_a_job()
    bodies = [json.dumps(provider.build_body(r), separators=(",", ":")).encode() for r in chat]
    url = provider.url
    headers = {"content-type": "application/json", "accept": "application/json"}
    if kind == "statek":
        stack.push_async_callback(provider.aclose)

        async def send_statek(i: int) -> None:
            await provider.complete(chat[i & 1])
        return _bounded(send_statek, bound)
    if kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        session = await stack.enter_async_context(
            httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0))

        async def send_httpx(i: int) -> None:
            response = await session.post(url, content=bodies[i & 1])
            if response.status_code != 200 or not response.content:
                raise RuntimeError(f"HTTP {response.status_code}")
        return _bounded(send_httpx, bound)
    import aiohttp

    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool)
    http = await stack.enter_async_context(aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=60)))
    if kind == "statek_aiohttp":
        from statek import _json

        async def send_statek_aiohttp(i: int) -> None:
            # What OpenAICompatibleProvider.complete does, with aiohttp as the transport.
            body = _json.dumps(provider.build_body(chat[i & 1]))
            async with http.post(url, data=body) as response:
                content = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
            provider.parse_reply(_json.loads(content))
        return _bounded(send_statek_aiohttp, bound)

    async def send_aiohttp(i: int) -> None:
        async with http.post(url, data=bodies[i & 1]) as response:
            if response.status != 200 or not await response.read():
                raise RuntimeError(f"HTTP {response.status}")
    return _bounded(send_aiohttp, bound)


async def _drive(send: Send, n: int, concurrency: int) -> float:
    """Send n requests from `concurrency` coroutines; wall seconds."""
    per, extra = divmod(n, concurrency)

    async def lane(k: int) -> None:
        for j in range(per + (k < extra)):
            await send(k + j * concurrency)

    began = time.perf_counter()
    await asyncio.gather(*(lane(k) for k in range(concurrency)))
    return time.perf_counter() - began


async def measure_one(client: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    """One measurement in this process (after an untimed warm-up round)."""
    import contextlib

    async with contextlib.AsyncExitStack() as stack:
        send = await _sender(client, base_url, stack)
        await _drive(send, concurrency, concurrency)
        cpu = time.process_time()
        wall = await _drive(send, n, concurrency)
        cpu = time.process_time() - cpu
    return {"client": client, "n": n, "concurrency": concurrency, "wall_s": wall,
            "calls_per_s": n / wall, "cpu_us_per_call": cpu / n * 1e6,
            "cpu_share": cpu / wall, "sniffio": _has("sniffio"), "json": _json_backend()}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _json_backend() -> str:
    from statek import _json

    return str(_json.JSON_BACKEND)


def _run_loop(use_uvloop: bool, coro: Any) -> Any:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def compare(clients: Sequence[str], n: int, concurrency: int, repeats: int,
            use_uvloop: bool) -> list[dict[str, Any]]:
    """Every client `repeats` times (alternating) against one mock server; one row each."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with mock_openai.running() as server:
        for repeat in range(repeats):
            for client in clients:
                print(f"[{repeat + 1}/{repeats}] {client}", file=sys.stderr, flush=True)
                before = server.stats()
                args = ["--one", client, "--url", server.url, "--n", str(n),
                        "--concurrency", str(concurrency)]
                got = run_isolated("benchmarks.http_clients",
                                   *args, *([] if use_uvloop else ["--asyncio"]))
                after = server.stats()
                calls = after["requests"] - before["requests"]
                got["server_cpu_us_per_call"] = (after["cpu_s"] - before["cpu_s"]) / calls * 1e6
                runs[client].append(got)
    rows = []
    for client, done in runs.items():
        rows.append({"client": client, "loop": "uvloop" if use_uvloop else "asyncio",
                     "repeats": len(done), "runs": done, **{
                         key: statistics.median(r[key] for r in done)
                         for key in ("calls_per_s", "cpu_us_per_call",
                                     "server_cpu_us_per_call")}})
    return rows


def _available(clients: Sequence[str]) -> list[str]:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        skipped = [c for c in clients if "aiohttp" in c]
        if skipped:
            print(f"aiohttp is not installed (pip install -e '.[bench]'): skipping "
                  f"{', '.join(skipped)}", file=sys.stderr)
        return [c for c in clients if "aiohttp" not in c]
    return list(clients)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--n", type=int, default=20_000, help="timed requests per run")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="n=3000, 1 repeat")
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio, not uvloop")
    parser.add_argument("--json", help="also write the rows (with every run) to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error("--n, --concurrency and --repeats must be >= 1")
    use_uvloop = not args.asyncio
    if use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop is not installed: plain asyncio", file=sys.stderr)
            use_uvloop = False
    if args.one:
        parse_client(args.one)
        print(json.dumps(_run_loop(use_uvloop, measure_one(args.one, args.url, args.n,
                                                           args.concurrency))))
        return
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    for client in clients:
        try:
            parse_client(client)
        except ValueError as exc:
            parser.error(str(exc))
    n, repeats = (3000, 1) if args.quick else (args.n, args.repeats)
    rows = compare(_available(clients), n, args.concurrency, repeats, use_uvloop)
    print(f"\n{n} requests, {args.concurrency} concurrent, median of {repeats}, "
          f"{rows[0]['loop'] if rows else ''}; client and server share the cores")
    print_table(["client", "calls/s", "client CPU µs/call", "server CPU µs/call", "sniffio",
                 "json"],
                [[r["client"], f"{r['calls_per_s']:,.0f}", f"{r['cpu_us_per_call']:.0f}",
                  f"{r['server_cpu_us_per_call']:.0f}", r["runs"][0]["sniffio"],
                  r["runs"][0]["json"]] for r in rows])
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()

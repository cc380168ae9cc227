"""A zero-latency OpenAI-compatible chat-completions server for throughput benchmarks.

    python -m benchmarks.servers.mock_openai [--port 0] [--delay 0.1] \
        [--reply 'x = 1' --reply 'exit(x)']

It prints `PORT <n>` on stdout once it accepts connections and serves until SIGTERM/SIGINT.
Every POST gets a chat.completion whose content is reply number k (cycling), where k is the
number of assistant messages in the request: a fresh job gets the first reply, the same job
after one turn the second, so a job of two replies ends in two model turns whatever order the
requests arrive in. `GET /stats` answers {"requests": n, "cpu_s": process CPU time}.

Why a hand-written asyncio protocol rather than a framework: the server shares the machine's
two cores with the worker it serves, so every microsecond it spends is taken from the measured
side. Replies are encoded once at start; a request costs one header scan and one byte count.
HTTP/1.1 keep-alive, Content-Length bodies only (what httpx, aiohttp and wrk send), no
pipelining guarantees beyond answering in order when `--delay` is 0. uvloop is used when
installed (`--no-uvloop` to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DEFAULT_REPLIES = ("x = 1", "exit(x)")
#: An assistant message in the request JSON. Quotes inside JSON strings are escaped, so this
#: cannot match message text.
_ASSISTANT = re.compile(rb'"role"\s*:\s*"assistant"')
_MAX_HEADER = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


def _response(status: str, body: bytes, close: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n")
    if close:
        head += "connection: close\r\n"
    return head.encode("ascii") + b"\r\n" + body


def completion(content: str, model: str = "mock") -> bytes:
    """The JSON body of one chat.completion answering `content`."""
    return json.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }, separators=(",", ":")).encode("utf-8")


class Counters:
    """What the server did, for `/stats` and the report at exit."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0


class MockProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests from the buffer, answer each at once (or
    after `delay` seconds)."""

    def __init__(self, replies: Sequence[bytes], delay: float, counters: Counters) -> None:
        self.replies = replies
        self.delay = delay
        self.counters = counters
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out: list[bytes] = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEADER:
                    out.append(_response("431 Request Header Fields Too Large", b"{}", True))
                    close = True
                break
            head = buffer[:end].lower()
            length = _content_length(head)
            if length is None or length > _MAX_BODY:
                out.append(_response("411 Length Required", b'{"error":"content-length"}', True))
                close = True
                break
            stop = end + 4 + length
            if len(buffer) < stop:
                break
            out.append(self._answer(head, buffer[end + 4:stop]))
            buffer = buffer[stop:]
            if b"\r\nconnection: close" in head:
                close = True
                break
        self.buffer = b"" if close else buffer
        if out:
            self._send(b"".join(out) if len(out) > 1 else out[0], close)

    def _answer(self, head: bytes, body: bytes) -> bytes:
        self.counters.requests += 1
        if head.startswith(b"get /stats"):
            stats = {"requests": self.counters.requests - 1,
                     "connections": self.counters.connections, "cpu_s": time.process_time()}
            return _response("200 OK", json.dumps(stats).encode())
        turn = len(_ASSISTANT.findall(body))
        return self.replies[turn % len(self.replies)]

    def _send(self, payload: bytes, close: bool) -> None:
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self._write, payload, close)
        else:
            self._write(payload, close)

    def _write(self, payload: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(payload)
        if close:
            self.transport.close()


def _content_length(head: bytes) -> int | None:
    """Content-Length from a lower-cased header block; 0 when absent; None if chunked or bad."""
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return None if b"\r\ntransfer-encoding:" in head else 0
    start = at + 17
    stop = head.find(b"\r\n", start)
    try:
        return int(head[start:stop if stop >= 0 else len(head)])
    except ValueError:
        return None


async def serve(port: int, replies: Sequence[str], delay: float) -> None:
    """Serve until SIGTERM/SIGINT; print `PORT n` when listening."""
    encoded = [_response("200 OK", completion(text)) for text in replies]
    counters = Counters()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(encoded, delay, counters),
                                      "127.0.0.1", port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: the OS picks (printed)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--reply", action="append", help="reply k answers turn k (repeatable)")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error(f"--delay must be >= 0, got {args.delay}")
    if not 0 <= args.port < 65536:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    runner = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            runner = uvloop.run
    runner(serve(args.port, args.reply or DEFAULT_REPLIES, args.delay))


class MockServer:
    """A running mock server subprocess: `url` (base URL, ending in /v1), its `delay`,
    `stats()`."""

    def __init__(self, process: subprocess.Popen[str], port: int, delay: float) -> None:
        self.process = process
        self.port = port
        self.delay = delay
        self.url = f"http://127.0.0.1:{port}/v1"

    def stats(self) -> dict[str, Any]:
        """The server's request count and CPU time (blocking; call outside an event loop)."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/stats")
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()


@contextmanager
def running(delay: float = 0.0, replies: Sequence[str] = DEFAULT_REPLIES,
            python: str | None = None, uvloop: bool = True,
            startup_timeout: float = 60.0) -> Iterator[MockServer]:
    """Start the server as a separate process, wait for its `PORT` line, stop it afterwards.
    `python` picks the interpreter (default: this one)."""
    cmd = [python or sys.executable, "-m", "benchmarks.servers.mock_openai",
           "--delay", repr(delay)]
    for text in replies:
        cmd += ["--reply", text]
    if not uvloop:
        cmd.append("--no-uvloop")
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = _read_port(process, startup_timeout)
        yield MockServer(process, port, delay)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_port(process: subprocess.Popen[str], timeout: float) -> int:
    """The port from the server's first stdout line (a thread bounds the wait)."""
    import threading

    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(process.stdout.readline()  # type: ignore[union-attr]
                                                        ), daemon=True)
    reader.start()
    reader.join(timeout)
    line = got[0] if got else ""
    if not line.startswith("PORT "):
        raise RuntimeError(f"mock server did not report its port (exit code {process.poll()}, "
                           f"first line {line!r})")
    return int(line.split()[1])


if __name__ == "__main__":
    main()

"""A scriptable HTTP server on 127.0.0.1 that imitates the OpenAI and Anthropic chat endpoints.

Tests queue `StubReply`s (or functions of the request returning one); an empty queue answers
with a normal reply shaped for the path. Every request and each new TCP connection is
recorded, so tests can check exact bodies, headers and connection reuse.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class StubReply:
    """One scripted answer. `body` is JSON-encoded unless bytes/str (sent verbatim); None means
    the default reply for the path. `delay` seconds pass before answering; `drop` closes the
    connection without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    connection: int  # 1-based number of the TCP connection it came on

    def json(self) -> Any:
        return json.loads(self.body)


Script = StubReply | Callable[[RecordedRequest], StubReply]


def openai_reply(
    content: str | None = "ok",
    *,
    tool_calls: Iterable[tuple[str, str, str]] = (),
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str = "gpt-stub",
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A chat.completion body; tool_calls are (id, name, arguments-as-JSON-text)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    calls = [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
        for i, n, a in tool_calls
    ]
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def anthropic_reply(
    text: str | None = "ok",
    *,
    tool_uses: Iterable[tuple[str, str, dict[str, Any]]] = (),
    input_tokens: int = 13,
    output_tokens: int = 5,
    model: str = "claude-stub",
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    """A Messages API body; tool_uses are (id, name, input)."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    content.extend({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in tool_uses)
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def error_reply(
    status: int, message: str = "stub error", *, retry_after: str | None = None
) -> StubReply:
    """An error in the shape both APIs use: {"error": {"type": ..., "message": ...}}."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"type": "error", "error": {"type": f"http_{status}", "message": message}}
    return StubReply(status=status, body=body, headers=headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of concurrent connects
    stub: ProviderStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server
    timeout = 10  # idle keep-alive connections give up eventually

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.server.stub._new_connection()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self._answer(self.rfile.read(length) if length else b"")

    def _answer(self, body: bytes) -> None:
        stub = self.server.stub
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            connection=self.connection_number,
        )
        reply = stub._next_reply(request)
        if reply.delay > 0 and stub._stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.body
        if payload is None:
            payload = anthropic_reply() if request.path.endswith("/messages") else openai_reply()
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) before we answered
            self.close_connection = True


class ProviderStub:
    """Start with `with ProviderStub() as stub:`; `stub.url` is http://127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._queue: deque[Script] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def script(self, *replies: Script) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def url(self) -> str:
        assert self._server is not None, "stub not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ProviderStub:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProviderStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _new_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def _next_reply(self, request: RecordedRequest) -> StubReply:
        with self._lock:
            self.requests.append(request)
            item = self._queue.popleft() if self._queue else StubReply()
        return item(request) if callable(item) else item


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port

"""The HTTP service the end-to-end tests' async tools call (stdlib only, one process).

Run as `python tests/support/tool_server.py`; it binds 127.0.0.1 on a port the OS picks and
prints `tool-server ready http://127.0.0.1:<port>` once it accepts connections.

    GET /echo?text=T      {"echo": "ECHO:T"}
    GET /slow?seconds=S   answers after S seconds (at most 60): a tool that outlives its step
    GET /stats            {"<path>": requests seen so far}
    POST /stall/...       never answers in time (a model server slower than any step)

Counts are per path and cumulative; tests compare before and after.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_SLOW_SECONDS = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a /slow request never keeps the process alive
    request_queue_size = 128
    counts: Counter[str]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # nobody reads a log; stdout only carries the readiness line

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.counts[url.path] += 1
        if url.path.startswith("/stall/"):
            time.sleep(MAX_SLOW_SECONDS)
            self._send(503, {"error": {"message": "stalled"}})
        else:
            self._send(404, {"error": f"no route {url.path!r}"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.server.lock:
            self.server.counts[url.path] += 1
        if url.path == "/echo":
            self._send(200, {"echo": "ECHO:" + query.get("text", "")})
        elif url.path == "/slow":
            time.sleep(min(float(query.get("seconds", "1")), MAX_SLOW_SECONDS))
            self._send(200, {"slow": "done"})
        elif url.path == "/stats":
            with self.server.lock:
                self._send(200, dict(self.server.counts))
        else:
            self._send(404, {"error": f"no route {url.path!r}"})

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up first (a tool cancelled by its timeout)
            self.close_connection = True


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.counts = Counter()
    server.lock = threading.Lock()
    host, port = server.server_address[:2]
    print(f"tool-server ready http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

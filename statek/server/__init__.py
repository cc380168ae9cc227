"""The worker's HTTP API: submit, push, cancel, read and stream jobs of a running worker.

It runs inside the worker process, on the worker's event loop (dbzero allows one writer per
prefix, so every write must happen in the worker): handlers do their writes synchronously in
`store.transition()` blocks, and each write request is answered only after a commit. Start it
with the settings `http_port` (and `http_host`, `http_token`) or `statek worker --http-port`.
"""

from __future__ import annotations

from statek.server.app import HttpServer, start_server

__all__ = ["HttpServer", "start_server"]

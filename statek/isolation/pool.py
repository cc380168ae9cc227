"""The scheduler's side of the executor processes: spawn, feed, watch, kill and replace.

Each executor runs one request at a time, in the order sent, so requests are written as soon
as they are submitted and the oldest unanswered one is the one running. The scheduler never
blocks on an executor: their pipes are non-blocking and read by an event-loop reader; calls
an executor makes while it runs job code are served in that reader, synchronously (they are
all short storage operations or sync tools). The running request has a wall deadline; past it
(a runaway loop, a regex stuck in C) the executor is killed and replaced, that request fails
and the requests queued behind it are sent to the replacement.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statek.isolation.protocol import FrameBuffer, ProtocolError, dumps, loads_untrusted

log = logging.getLogger("statek.isolation")
_monotonic = time.monotonic

#: serve(name, args, kwargs, stmt, calls) -> reply, for the calls of one request.
Serve = Callable[[str, Any, Any, Any, Any], Any]
#: Seconds a run has to end after a "budget" reply (its statement's end, then its outcome).
ENDING_GRACE = 2.0


class ExecutorLost(Exception):
    """The executor running a request was killed or died; the message says why.
    `over_time`: it ran past the request's wall-clock limit."""

    def __init__(self, reason: str, over_time: bool = False) -> None:
        super().__init__(reason)
        self.over_time = over_time


@dataclass(frozen=True)
class PoolConfig:
    processes: int
    wall_timeout: float
    cpu_seconds: int
    memory_mb: int
    open_files: int
    preload: tuple[str, ...] = ()
    seccomp: bool = True


@dataclass(eq=False)
class _Request:
    id: int
    frame: bytes
    serve: Serve
    future: asyncio.Future[Any]
    timeout: float
    started: float = 0.0  # loop time it became the running request
    ending: bool = False  # told its code budget is spent (a "budget" reply): in its grace
    # the sending step's context: what is logged about this run names its job, although the
    # timers and reader callbacks that notice its end carry whichever step spawned the
    # executor or started the run before it
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


def _warn(request: _Request | None, message: str, *args: Any) -> None:
    """A warning in `request`'s step context (its job named on the line), or in none."""
    context = contextvars.Context() if request is None else request.context.copy()
    context.run(log.warning, message, *args)


@dataclass(eq=False)
class Executor:
    """One executor process and the requests sent to it."""

    pool: ExecutorPool
    index: int
    proc: subprocess.Popen[bytes] | None = None
    rfd: int = -1
    wfd: int = -1
    loop: asyncio.AbstractEventLoop | None = None
    ready: bool = False
    protection: str = "?"
    buffer: FrameBuffer = field(default_factory=FrameBuffer)
    out: bytearray = field(default_factory=bytearray)
    writing: bool = False
    requests: OrderedDict[int, _Request] = field(default_factory=OrderedDict)
    drop: list[str] = field(default_factory=list)
    deadline: asyncio.TimerHandle | None = None
    runs: int = 0

    # ------------------------------------------------------------------ process
    def spawn(self, loop: asyncio.AbstractEventLoop | None) -> None:
        cfg = self.pool.config
        config = json.dumps({"memory_mb": cfg.memory_mb, "open_files": cfg.open_files,
                             "preload": list(cfg.preload), "seccomp": cfg.seccomp})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "statek.isolation.child", config],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        for fd in (self.wfd, self.rfd):
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.ready = False
        self.buffer = FrameBuffer()
        self.out = bytearray()
        self.writing = False
        self.loop = loop
        if loop is not None:
            loop.add_reader(self.rfd, self._readable)
            self._arm(self.pool.startup_timeout, "did not start")

    def wait_started(self, timeout: float) -> None:
        """Block until the process reports it is ready (before any event loop serves it)."""
        import select

        deadline = _monotonic() + timeout
        while not self.ready and self.proc is not None:
            left = deadline - _monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise TimeoutError("an isolated executor did not start")
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise RuntimeError(self._death_reason())
            for body in self.buffer.feed(chunk):
                self._message(loads_untrusted(body))

    def _detach(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                loop.remove_reader(self.rfd)
            if self.writing:
                with contextlib.suppress(Exception):
                    loop.remove_writer(self.wfd)
        self.writing = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def kill(self) -> None:
        """End the process (SIGKILL) and forget its pipes; requests are not touched."""
        self._detach()
        proc = self.proc
        self.proc = None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve this executor from `loop` (a new event loop in the same process)."""
        if self.proc is None:
            self.spawn(loop)
            return
        if self.loop is loop:
            return
        if self.requests:  # requests of a loop that is gone: nobody awaits them any more
            self.kill()
            self.requests.clear()
            self.spawn(loop)
            return
        self._detach()
        self.loop = loop
        loop.add_reader(self.rfd, self._readable)
        if self.out and not self.writing:
            self.writing = True
            loop.add_writer(self.wfd, self._writable)
        if not self.ready:
            self._arm(self.pool.startup_timeout, "did not start")

    # ------------------------------------------------------------------ requests
    def submit(self, request: _Request) -> None:
        self.requests[request.id] = request
        self._write(request.frame)
        if len(self.requests) == 1 and self.ready:
            self._start_head()

    def _write(self, frame: bytes) -> None:
        if self.writing:
            self.out += frame
            return
        try:
            written = os.write(self.wfd, frame)
        except BlockingIOError:
            written = 0
        except OSError:  # the process is gone; the reader sees EOF and replaces it
            return
        if written < len(frame):
            self.out += frame[written:]
            self.writing = True
            assert self.loop is not None
            self.loop.add_writer(self.wfd, self._writable)

    def _writable(self) -> None:
        try:
            written = os.write(self.wfd, self.out)
        except BlockingIOError:
            return
        except OSError:
            written = len(self.out)
        del self.out[:written]
        if not self.out:
            self.writing = False
            assert self.loop is not None
            self.loop.remove_writer(self.wfd)

    def _start_head(self) -> None:
        """The oldest request is now running: its wall-clock limit starts."""
        head = next(iter(self.requests.values()))
        assert self.loop is not None
        head.started = self.loop.time()
        self._arm(head.timeout, "exceeded the wall-clock limit of the run", True)

    def _arm(self, seconds: float, reason: str, over_time: bool = False) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        assert self.loop is not None
        self.deadline = self.loop.call_later(seconds, self._expired, reason, seconds, over_time)

    def _expired(self, reason: str, seconds: float, over_time: bool) -> None:
        self.deadline = None
        self.replace(f"the isolated executor {reason} ({seconds:g}s) and was killed",
                     over_time)

    # ------------------------------------------------------------------ reading
    def _readable(self) -> None:
        try:
            chunk = os.read(self.rfd, 1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk = b""
            log.debug("executor read failed: %s", exc)
        if not chunk:
            self.replace(self._death_reason())
            return
        proc = self.proc
        try:
            for body in self.buffer.feed(chunk):
                if self.proc is not proc:  # replaced while serving an earlier frame
                    return
                self._message(loads_untrusted(body))
        except ProtocolError as exc:
            self.replace(f"the isolated executor broke the protocol ({exc}) and was killed")

    def _message(self, message: Any) -> None:
        if type(message) is not tuple or not message:
            raise ProtocolError("a message is a non-empty tuple")
        kind = message[0]
        if kind == "call":
            self._call(message)
        elif kind == "done":
            self._done(message)
        elif kind == "ready":
            self.ready = True
            self.protection = str(message[2]) if len(message) > 2 else "?"
            self.pool.note_protection(self.protection)
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
            if self.requests and self.loop is not None:
                self._start_head()
        else:
            raise ProtocolError(f"unexpected message {kind!r}")

    def _head(self, run_id: Any) -> _Request:
        if not self.requests:
            raise ProtocolError("a message for no request")
        head = next(iter(self.requests.values()))
        if run_id != head.id:
            raise ProtocolError("a message for a request that is not running")
        return head

    def _call(self, message: tuple[Any, ...]) -> None:
        if len(message) != 7:
            raise ProtocolError("a call has 7 fields")
        _, run_id, name, args, kwargs, stmt, calls = message
        head = self._head(run_id)
        try:
            reply = head.serve(name, args, kwargs, stmt, calls)
        except Exception as exc:  # serve() answers errors itself; this is a last resort
            log.exception("serving an executor call failed")
            reply = ("err", "RuntimeError", (f"internal error: {type(exc).__name__}",))
        if reply[0] == "budget" and not head.ending:
            # the step's code budget stopped a sync tool (the loop was blocked meanwhile, so
            # the run's own deadline has passed): the executor ends its statement and
            # answers, keeping what ran before, within a grace, once
            head.ending = True
            self._arm(ENDING_GRACE, "did not end its run when its code budget was spent", True)
        self._write(dumps(("reply", run_id, reply)))

    def _done(self, message: tuple[Any, ...]) -> None:
        if len(message) != 3 or not isinstance(message[2], dict):
            raise ProtocolError("a result is (done, id, dict)")
        head = self._head(message[1])
        del self.requests[head.id]
        self.runs += 1
        assert self.loop is not None
        outcome = message[2]
        outcome["elapsed"] = self.loop.time() - head.started
        if self.requests:
            self._start_head()
        elif self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if not head.future.done():
            head.future.set_result(outcome)

    def _death_reason(self) -> str:
        proc = self.proc
        code = None
        if proc is not None:
            with contextlib.suppress(Exception):
                code = proc.wait(timeout=2)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            why = {"SIGXCPU": "exceeded its CPU budget", "SIGKILL": "was killed",
                   "SIGSEGV": "crashed", "SIGSYS": "made a forbidden system call"}
            return f"the isolated executor {why.get(name, 'died')} ({name})"
        return f"the isolated executor exited (status {code})"

    def replace(self, reason: str, over_time: bool = False) -> None:
        """Kill this executor, fail the request it was running, resend the others to a new
        process."""
        loop = self.loop
        running = next(iter(self.requests.values()), None)
        _warn(running, "%s; starting another", reason)
        self.kill()
        pending = list(self.requests.values())
        self.requests.clear()
        self.drop.clear()  # a new process has no namespaces to drop
        self.pool.replaced += 1
        if not pending or loop is None or loop.is_closed():
            for request in pending:  # (no requests: a new process starts on the next one)
                if not request.future.done():
                    request.future.set_exception(ExecutorLost(reason))
            return
        head, rest = pending[0], pending[1:]
        if not head.future.done():  # the one that was running (or about to)
            head.future.set_exception(ExecutorLost(reason, over_time))
        self.spawn(loop)
        for request in rest:
            self.submit(request)


class ExecutorPool:
    """`config.processes` executors; a job always goes to the same one (its namespace, with
    the functions and classes it defined, lives there)."""

    startup_timeout = 60.0

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.executors = [Executor(self, n) for n in range(config.processes)]
        self._next_id = 0
        self.replaced = 0
        self.protections: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start (or serve from `loop`) every executor at once: a job's first run should
        not wait for its executor's start-up."""
        self._loop = loop
        for executor in self.executors:
            executor.bind(loop)

    def note_protection(self, protection: str) -> None:
        if protection not in self.protections:
            self.protections.add(protection)
            if protection != "seccomp":  # the pool's, not the job's whose step saw it first
                _warn(None, "isolated executors run without a seccomp filter: %s (resource "
                      "limits still apply; pip install 'statek[isolation]' to add one)",
                      protection)

    def executor_for(self, job_uuid: str) -> Executor:
        return self.executors[hash(job_uuid) % len(self.executors)]

    def run(self, job_uuid: str, request: dict[str, Any], serve: Serve,
            timeout: float | None = None) -> asyncio.Future[Any]:
        """Send a run request for `job_uuid`; the future gets the outcome dict (with
        "elapsed", the seconds it ran) or ExecutorLost. `timeout`: its wall-clock limit
        (default: the pool's)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.start(loop)
        executor = self.executor_for(job_uuid)
        executor.bind(loop)
        if executor.drop:
            request["drop"] = executor.drop
            executor.drop = []
        self._next_id += 1
        run_id = self._next_id
        future: asyncio.Future[Any] = loop.create_future()
        limit = self.config.wall_timeout if timeout is None else timeout
        executor.submit(_Request(run_id, dumps(("run", run_id, request)), serve, future, limit))
        return future

    def forget(self, job_uuid: str) -> None:
        """The job ended: its executor may drop its namespace."""
        executor = self.executor_for(job_uuid)
        if executor.proc is not None:
            executor.drop.append(job_uuid)

    def reset(self) -> None:
        """Drop every job namespace (the store was closed: as after a restart)."""
        frame = dumps(("reset",))
        for executor in self.executors:
            executor.drop.clear()
            if executor.proc is None:
                continue
            if executor.writing or executor.requests:
                executor.kill()  # busy for a loop that may be gone: start afresh
                executor.requests.clear()
                continue
            try:
                written = os.write(executor.wfd, frame)
            except OSError:
                written = 0
            if written != len(frame):
                executor.kill()

    def prestart(self, timeout: float = 60.0) -> None:
        """Start every executor now and wait until each is ready, blocking (tests and
        benchmarks call this outside any event loop)."""
        for executor in self.executors:
            if executor.proc is None:
                executor.spawn(None)
        for executor in self.executors:
            executor.wait_started(timeout)

    def close(self) -> None:
        for executor in self.executors:
            executor.kill()
            for request in executor.requests.values():
                if not request.future.done() and not request.future.get_loop().is_closed():
                    request.future.set_exception(ExecutorLost("the executor pool was closed"))
            executor.requests.clear()

    def pids(self) -> list[int | None]:
        return [e.proc.pid if e.proc is not None else None for e in self.executors]


_pool: list[ExecutorPool | None] = [None]


def pool_for(config: PoolConfig) -> ExecutorPool:
    """The process's pool for `config` (a pool of another configuration is closed)."""
    current = _pool[0]
    if current is not None and current.config == config:
        return current
    if current is not None:
        current.close()
    current = _pool[0] = ExecutorPool(config)
    return current


def current_pool() -> ExecutorPool | None:
    return _pool[0]


def shutdown() -> None:
    """Kill the executors (at exit, and for tests)."""
    current = _pool[0]
    _pool[0] = None
    if current is not None:
        current.close()


atexit.register(shutdown)

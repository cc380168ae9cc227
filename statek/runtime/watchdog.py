"""Watchdogs over synchronous job code: the step budget, the hard limit and the heartbeat.

Job code runs in the worker's event-loop thread, so while it runs nothing else does. Two
watchdogs bound that:

* **The budget** (`step_code_budget`, default 5 s). The interpreter keeps a few plain
  attributes in `harness.GUARD` (which run of job code this is, whether job code itself is
  executing, its deadline). A daemon thread polls them and, past the deadline, sends the
  main thread a real-time signal. The signal's handler runs in the main thread between two
  bytecodes and raises `StepBudgetExceeded` only if job code is executing at that moment,
  so the exception cannot land in statek's own code (between statements it only marks the
  run tripped, and the interpreter ends it before the next statement). The thread signals
  again every RESEND_S while the run goes on (a signal also breaks a blocking sleep), and
  the run fails even if job code caught the exception; job code that catches it in a loop
  forever (`except BaseException` around a loop) is left to the hard limit. This needs the
  loop to run in the main thread (only it receives signal handlers); elsewhere the
  budget is not enforced and a warning says so.
* **The hard limit** (`step_kill_after`, default 30 s). A C-level loop (a catastrophic regex,
  a huge power) holds the GIL and sees no signal handler until it returns. A tiny separate
  process (`_hardwatch.py`) reads the heartbeat file and SIGKILLs the worker when one run of
  job code outlasts the limit; a supervisor restarts it, and the quarantine (see
  `statek.runtime.quarantine`) ends a job that keeps killing workers. Only running job code
  in another process (the isolated executor) avoids losing the worker.

The heartbeat is a small memory-mapped file next to the prefix's store: at the start of each
run of job code the worker writes (sequence number, 1, job uuid), at its end a 0. The page
outlives the process, so after a crash the next start reads which job was running.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from statek.execution.harness import GUARD, StepBudgetExceeded

log = logging.getLogger("statek.watchdog")

#: The signal the budget thread sends the main thread (a real-time one: no default use).
BUDGET_SIGNAL: int = getattr(signal, "SIGRTMIN", signal.SIGUSR2) + 3
POLL_S = 0.1  # how often the budget thread looks when no run is near its deadline
RESEND_S = 0.05  # how often it signals again a run that goes on past its deadline

_BEAT = struct.Struct("<QB7x40s")  # sequence, state (1: in job code), job uuid
HEARTBEAT_SIZE = 128
_HARDWATCH = Path(__file__).with_name("_hardwatch.py")


class Heartbeat:
    """The memory-mapped record of which job's code is running (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < HEARTBEAT_SIZE:
                os.ftruncate(fd, HEARTBEAT_SIZE)
            self.map = mmap.mmap(fd, HEARTBEAT_SIZE)
        finally:
            os.close(fd)
        self.seq = struct.unpack_from("<Q", self.map, 0)[0]

    def previous(self) -> tuple[str, bool] | None:
        """(job uuid, killed by the hard watchdog) if the last process died in job code."""
        _seq, state, raw = _BEAT.unpack_from(self.map, 0)
        if state != 1:
            return None
        return raw.rstrip(b"\0").decode("ascii", "replace"), self.map[9] == 1

    def beat(self, job_uuid: str) -> None:
        self.seq += 1
        _BEAT.pack_into(self.map, 0, self.seq, 1, job_uuid.encode()[:40])

    def unbeat(self) -> None:
        self.map[8] = 0

    def close(self) -> None:
        with contextlib.suppress(ValueError, BufferError):
            self.map.close()


def heartbeat_path(prefix: str, prefix_uuid: int) -> Path:
    """Next to the prefix's store file when it can be found (Linux), else in the temp dir."""
    suffix = f"{prefix.rsplit('/', 1)[-1]}.db0"
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(entry.path)
                if target.endswith("/" + suffix):
                    return Path(target[: -len(".db0")] + ".statek-heartbeat")
    return Path(tempfile.gettempdir()) / f"statek-heartbeat-{os.getuid()}-{prefix_uuid}"


# ---------------------------------------------------------------------- the budget
class _BudgetThread(threading.Thread):
    """Polls GUARD and signals the main thread when a run of job code is past its deadline."""

    def __init__(self, main_ident: int) -> None:
        super().__init__(name="statek-budget", daemon=True)
        self.main_ident = main_ident
        self.stopped = threading.Event()

    def run(self) -> None:
        guard = GUARD
        wait = POLL_S
        while not self.stopped.wait(wait):
            wait = POLL_S
            seq = guard.seq
            deadline = guard.deadline
            if not guard.running or deadline == float("inf"):
                continue
            left = deadline - time.monotonic()
            if left > 0:
                wait = min(POLL_S, left + 0.001)
                continue
            guard.fire_seq = seq  # the handler ignores it if the run ended meanwhile
            with contextlib.suppress(OSError, ValueError):
                signal.pthread_kill(self.main_ident, BUDGET_SIGNAL)
            wait = RESEND_S


def _on_budget_signal(signum: int, frame: FrameType | None) -> None:
    """In the main thread: raise into job code if it is the run found over budget."""
    guard = GUARD
    if not guard.running or guard.fire_seq != guard.seq:
        return  # a late signal for a run that has ended
    guard.tripped = True
    if guard.active:
        raise StepBudgetExceeded
    # else statek's own code runs: the interpreter ends the run before the next statement


# ---------------------------------------------------------------------- lifetime
class Guards:
    """The watchdogs of one worker loop; `close()` takes them all down."""

    def __init__(self) -> None:
        self.heartbeat: Heartbeat | None = None
        self.thread: _BudgetThread | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.old_handler: Any = None
        self._closers: list[Callable[[], None]] = []

    def start_heartbeat(self, path: Path) -> Heartbeat | None:
        """Map the heartbeat and point GUARD at it; None if another loop of this process
        has it (that loop's heartbeat and watchdogs cover this one's steps too)."""
        if GUARD.beat is not None:
            return None
        beat = self.heartbeat = Heartbeat(path)
        GUARD.beat, GUARD.unbeat = beat.beat, beat.unbeat
        self._closers.append(self._stop_heartbeat)
        return beat

    def _stop_heartbeat(self) -> None:
        GUARD.beat = GUARD.unbeat = None
        if self.heartbeat is not None:
            self.heartbeat.unbeat()
            self.heartbeat.close()

    def start_budget(self) -> bool:
        """Install the signal handler and start the thread; False when it cannot be done
        (not the main thread, or the application handles the signal)."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("step_code_budget is not enforced: the worker loop does not run in "
                        "the main thread (only step_kill_after applies)")
            return False
        current = signal.getsignal(BUDGET_SIGNAL)
        if current is _on_budget_signal:
            return True  # another loop of this process installed it
        if current not in (signal.SIG_DFL, signal.SIG_IGN, None):
            log.warning("step_code_budget is not enforced: signal %d already has a handler",
                        BUDGET_SIGNAL)
            return False
        self.old_handler = signal.signal(BUDGET_SIGNAL, _on_budget_signal)
        signal.siginterrupt(BUDGET_SIGNAL, False)  # statek's own system calls just resume
        thread = self.thread = _BudgetThread(threading.get_ident())
        thread.start()
        self._closers.append(self._stop_budget)
        return True

    def _stop_budget(self) -> None:
        if self.thread is not None:
            self.thread.stopped.set()
            self.thread.join(timeout=1.0)
        signal.signal(BUDGET_SIGNAL, self.old_handler)

    def start_hard_limit(self, limit: float) -> None:
        """Start the watchdog process over the heartbeat (start_heartbeat first)."""
        assert self.heartbeat is not None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_HARDWATCH), str(self.heartbeat.path),
                 str(os.getpid()), repr(limit)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        except OSError as exc:  # e.g. an interpreter this user may not execute again
            log.warning("step hard limit is off: the watchdog process did not start "
                           "(%s); a job stuck in C code can stall this worker", exc)
            return
        self._closers.append(self._stop_hard_limit)
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "watching": it has the file mapped

    def _stop_hard_limit(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

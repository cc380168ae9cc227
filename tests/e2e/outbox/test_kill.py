"""SIGKILL of producers and of the worker at seeded moments loses nothing and doubles nothing.

A producer process submits jobs and pushes messages through the outbox while a worker
process runs; both are killed and restarted several times (at moments drawn from a seeded
generator, counted in accepted calls). At the end every job whose submit returned ran
exactly once, and every message whose push returned was delivered exactly once; a call cut
short by the kill (never confirmed) happened at most once.

CI size: 1,000 jobs and 1,000 messages. Full size (10,000 each):
STATEK_OUTBOX_KILL_FULL=1 .venv/bin/python -m pytest -q tests/e2e/outbox/test_kill.py
"""

from __future__ import annotations

import collections
import collections.abc
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

FULL = os.environ.get("STATEK_OUTBOX_KILL_FULL") == "1"
TOTAL = 10_000 if FULL else 1_000
BATCH = 10  # jobs per submit call; each job then gets one message (one call each)
KILLS = 6  # of each process
SEED = int(os.environ.get("STATEK_OUTBOX_KILL_SEED", "20261201"))

SETUP = textwrap.dedent("""
    import sys, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    statek.Agent("echo")
    statek.close()
""")

WORKER = textwrap.dedent("""
    import sys, dbzero as db0, statek
    from statek.providers import use_offline
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    print("worker up", flush=True)
    stats = statek.start_statek(max_concurrency=100, provider=use_offline(),
                                auto_terminate=sys.argv[2] == "once")
    print("worker done", stats.jobs_completed, flush=True)
    statek.close()
""")

PRODUCER = textwrap.dedent("""
    import sys, dbzero as db0, statek
    from statek.server.views import find_agent
    root, gen, first, total, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
    db0.init(dbzero_root=root); statek.init(); statek.open_prefix("main", "feed")
    api = statek.StatekClientAPI()
    echo = find_agent("echo")
    print("producer up", flush=True)
    for start in range(first, total, batch):
        names = [f"{gen}-{k}" for k in range(start, min(start + batch, total))]
        ids = api.submit_new_job_ids(echo, [{"i": n} for n in names],
                                     warmup_code="print(i)\\nexit(i)")
        print("J", *names, flush=True)
        for name, job_id in zip(names, ids):
            api.push_message(job_id, "m" + name)
            print("M", name, flush=True)
    statek.close()
    print("producer done", flush=True)
""")

REPORT = textwrap.dedent("""
    import sys, json, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "r")
    rows = []
    for job in db0.find(statek.Job):
        rows.append([job.locals.get("i"), str(job.status), job.console, list(job.messages)])
    import os
    left = [n for n in os.listdir(sys.argv[1] + "/main.outbox") if n.endswith(".seg")]
    print(json.dumps({"jobs": rows, "segments_left": left}))
    statek.close()
""")


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_line(proc: subprocess.Popen[str], prefix: str) -> None:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, f"process ended before printing {prefix!r}: {proc.stderr.read() if proc.stderr else ''}"  # noqa: E501
        if line.startswith(prefix):
            return


def _start_worker(root: Path, mode: str = "forever") -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(root), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _wait_line(proc, "worker up")
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


class Ledger:
    """What the producers confirmed (accepted) and what they may have written unconfirmed."""

    def __init__(self) -> None:
        self.jobs: set[str] = set()
        self.messages: set[str] = set()
        self.maybe_jobs: set[str] = set()
        self.maybe_messages: set[str] = set()

    def record(self, line: str) -> None:
        kind, *names = line.split()
        if kind == "J":
            self.jobs.update(names)
        elif kind == "M":
            self.messages.update("m" + n for n in names)

    def in_flight(self, gen: int, first: int, total: int) -> None:
        """A killed producer's next call may have been written without being confirmed."""
        names = [f"{gen}-{k}" for k in range(first, min(first + BATCH, total))]
        self.maybe_jobs.update(n for n in names if n not in self.jobs)
        self.maybe_messages.update("m" + n for n in names if "m" + n not in self.messages)


def _producer_run(root: Path, gen: int, total: int, ledger: Ledger, stop_after: int | None,
                  on_line: collections.abc.Callable[[int], None]) -> bool:
    """Run one producer generation; kill it after `stop_after` confirmed calls. Returns
    whether it finished its range."""
    proc = _python(PRODUCER, str(root), str(gen), "0", str(total), str(BATCH))
    assert proc.stdout is not None
    calls = 0
    last_job_start = 0
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(("J ", "M ")):
            ledger.record(line)
            calls += 1
            if line.startswith("J "):
                last_job_start = int(line.split()[1].split("-")[1])
            on_line(calls)
            if stop_after is not None and calls >= stop_after:
                _kill(proc)
                for line in proc.stdout:  # confirmed before the kill, not read yet
                    if line.startswith(("J ", "M ")):
                        ledger.record(line)
                        if line.startswith("J "):
                            last_job_start = int(line.split()[1].split("-")[1])
                # whatever it was doing: a message of the last batch, or the next batch
                ledger.in_flight(gen, last_job_start, total)
                ledger.in_flight(gen, last_job_start + BATCH, total)
                return False
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return True


def test_kill_producers_and_worker_at_seeded_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    setup = _python(SETUP, str(tmp_path))
    assert setup.wait(timeout=120) == 0, setup.stderr.read() if setup.stderr else ""
    ledger = Ledger()
    worker = [_start_worker(tmp_path)]
    share = 2 * (TOTAL // KILLS)  # jobs a killed generation could submit (it never does)
    stops = [rng.randrange(3, share) for _ in range(KILLS)]  # confirmed calls before a kill
    worker_kills = sorted(rng.sample(range(5, sum(stops)), KILLS))
    calls_seen = [0]

    def maybe_kill_worker(_calls: int) -> None:
        calls_seen[0] += 1
        if worker_kills and calls_seen[0] >= worker_kills[0]:
            worker_kills.pop(0)
            _kill(worker[0])
            worker[0] = _start_worker(tmp_path)

    gen = 0
    for stop in stops:  # killed generations, each after a seeded number of confirmed calls
        gen += 1
        assert not _producer_run(tmp_path, gen, share, ledger, stop, maybe_kill_worker)
    gen += 1
    # the last generation completes: the total confirmed reaches at least TOTAL of each
    remaining = max(BATCH, TOTAL - min(len(ledger.jobs), len(ledger.messages)))
    assert _producer_run(tmp_path, gen, remaining, ledger, None, maybe_kill_worker)
    while worker_kills:  # any worker kill not reached yet happens now
        maybe_kill_worker(0)
    worker[0].send_signal(signal.SIGTERM)
    worker[0].wait(timeout=300)
    final = _python(WORKER, str(tmp_path), "once")
    out, err = final.communicate(timeout=1200)
    assert final.returncode == 0 and "worker done" in out, err
    report = _python(REPORT, str(tmp_path))
    out, err = report.communicate(timeout=300)
    assert report.returncode == 0, err
    data = json.loads(out)
    _check(ledger, data)


def _check(ledger: Ledger, data: dict[str, object]) -> None:
    rows = data["jobs"]
    assert isinstance(rows, list)
    assert data["segments_left"] == []  # every finished segment was reclaimed
    assert len(ledger.jobs) >= TOTAL and len(ledger.messages) >= TOTAL
    jobs = collections.Counter(row[0] for row in rows)
    doubled = [name for name, count in jobs.items() if count > 1]
    assert not doubled, f"jobs created twice: {doubled[:10]}"
    missing = ledger.jobs - set(jobs)
    assert not missing, f"accepted jobs never created: {sorted(missing)[:10]}"
    assert set(jobs) <= ledger.jobs | ledger.maybe_jobs
    for name, status, console, _messages in rows:
        assert status == "DONE", (name, status)
        assert console.count(f"{name}\n") == 1, (name, console)  # its warmup ran once
    delivered = collections.Counter(m for row in rows for m in row[3])
    doubled = [m for m, count in delivered.items() if count > 1]
    assert not doubled, f"messages delivered twice: {doubled[:10]}"
    missing = ledger.messages - set(delivered)
    assert not missing, f"accepted messages never delivered: {sorted(missing)[:10]}"
    assert set(delivered) <= ledger.messages | ledger.maybe_messages
    for name, _status, _console, messages in rows:
        assert all(m == "m" + name for m in messages), (name, messages)

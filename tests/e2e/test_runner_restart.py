"""A worker killed or stopped mid-run resumes every job on the next start, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.helpers import run_python

# Both processes know the tool: a job's warmup calls it, and in the worker it tells the test
# (on stdout) how far the fleet got, so the test signals at a known point, never after a sleep.
TOOL = textwrap.dedent("""
    import asyncio, sys, statek

    @statek.tool
    def announce(what: str) -> None:
        print(what, flush=True)

    @statek.tool
    async def hold() -> str:
        # in a worker that runs "forever", an await that outlasts any shutdown grace
        await asyncio.sleep(3600 if sys.argv[2:] == ["forever"] else 0)
        return "held"
""")

SETUP = TOOL + textwrap.dedent("""
    import dbzero as db0
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    agent = statek.Agent("napper", tools=[announce, hold])
    code = ("print('began', i)\\nannounce('began')\\nwoken = sleep(0.3).value\\n"
            "print('woke', i)\\nexit(i)")
    statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(40)],
                                                warmup_code=code)
    statek.StatekClientAPI().submit_new_job(agent, {"i": 40},
                                            warmup_code="announce('holding')\\nexit(hold())")
    statek.close()
""")

WORKER = TOOL + textwrap.dedent("""
    import logging, os, signal, dbzero as db0
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    if sys.argv[2] == "signal-at-start":  # a SIGTERM while the worker is still starting up
        import statek.store as store
        init = store.init
        def init_then_signal(settings=None):
            os.kill(os.getpid(), signal.SIGTERM)
            return init(settings)
        store.init = init_then_signal
    db0.init(dbzero_root=sys.argv[1]); statek.open_prefix("main", "rw")
    stats = statek.start_statek(max_concurrency=8, auto_terminate=sys.argv[2] == "once")
    print("worker done", stats.jobs_completed, flush=True)
    statek.close()
""")

REPORT = textwrap.dedent("""
    import sys, json, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.open_prefix("main", "rw")
    jobs = list(db0.find(statek.Job))
    print(json.dumps([[j.locals["i"], j.exit_status, str(j.status), j.console] for j in jobs]))
    statek.close()
""")




def _start_worker(root: Path, mode: str = "forever", grace: float = 1) -> subprocess.Popen[str]:
    env = {**os.environ, "STATEK_SHUTDOWN_GRACE": str(grace)}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], *lines: str, began: int = 0) -> None:
    """Read the worker's stdout until each of `lines` and `began` "began" lines have been
    printed, in whatever order they come."""
    assert proc.stdout is not None
    waiting, seen = set(lines), 0
    while waiting or seen < began:
        got = proc.stdout.readline()
        assert got, f"worker ended early; still waiting for {waiting}, began {seen}/{began}"
        seen += got.startswith("began")
        waiting = {line for line in waiting if not got.startswith(line)}


def _check_all_done_once(root: Path) -> None:
    rows = json.loads(run_python(REPORT, str(root)))
    assert len(rows) == 41
    for i, exit_status, status, console in rows:
        if i == 40:
            assert (status, exit_status, console) == ("DONE", "held", [])
            continue
        assert (status, exit_status) == ("DONE", i)
        # committed statements never run twice; uncommitted ones rolled back with their output
        assert console == [f"began {i}\n", f"woke {i}\n"]


def test_killed_worker_resumes_every_job_exactly_once(tmp_path: Path) -> None:
    run_python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path)
    _wait_for(proc, began=12)  # some jobs done, some asleep, some never started
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    out = run_python(WORKER, str(tmp_path), "once")
    assert "worker done" in out
    _check_all_done_once(tmp_path)


def test_sigterm_stops_gracefully_and_next_start_resumes(tmp_path: Path) -> None:
    run_python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path)
    _wait_for(proc, "worker ready", began=4)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "worker done" in stdout
    run_python(WORKER, str(tmp_path), "once")
    _check_all_done_once(tmp_path)


def test_second_signal_aborts_at_once(tmp_path: Path) -> None:
    run_python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path, grace=600)  # only the second signal can end it in time
    # one step stays in flight ("holding"): the grace period must be cut short
    _wait_for(proc, "worker ready", "holding", began=4)
    proc.send_signal(signal.SIGINT)
    _wait_for(proc, "stopping")  # two signals sent at once may reach the process as one
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "aborting in-flight steps" in stdout and "worker done" in stdout
    run_python(WORKER, str(tmp_path), "once")
    _check_all_done_once(tmp_path)


def test_a_signal_during_start_up_stops_the_worker_cleanly(tmp_path: Path) -> None:
    run_python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path, "signal-at-start")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "worker done 0" in stdout  # stopped before it started any step
    run_python(WORKER, str(tmp_path), "once")
    _check_all_done_once(tmp_path)

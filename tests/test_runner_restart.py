"""A worker killed or stopped mid-run resumes every job on the next start, exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SETUP = textwrap.dedent("""
    import sys, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    agent = statek.Agent("napper")
    code = "print('began', i)\\nwoken = sleep(0.3).value\\nprint('woke', i)\\nexit(i)"
    statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(40)],
                                                warmup_code=code)
    statek.close()
""")

WORKER = textwrap.dedent("""
    import sys, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.open_prefix("main", "rw")
    print("worker up", flush=True)
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


def _python(code: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _start_worker(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(root), "forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "worker up"
    return proc


def _check_all_done_once(root: Path) -> None:
    rows = json.loads(_python(REPORT, str(root)))
    assert len(rows) == 40
    for i, exit_status, status, console in rows:
        assert (status, exit_status) == ("DONE", i)
        # committed statements never run twice; uncommitted ones rolled back with their output
        assert console == [f"began {i}\n", f"woke {i}\n"]


def test_killed_worker_resumes_every_job_exactly_once(tmp_path: Path) -> None:
    _python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path)
    time.sleep(0.8)  # some jobs done, some asleep, some never started
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    out = _python(WORKER, str(tmp_path), "once")
    assert "worker done" in out
    _check_all_done_once(tmp_path)


def test_sigterm_stops_gracefully_and_next_start_resumes(tmp_path: Path) -> None:
    _python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "worker done" in stdout
    _python(WORKER, str(tmp_path), "once")
    _check_all_done_once(tmp_path)


def test_second_signal_aborts_at_once(tmp_path: Path) -> None:
    _python(SETUP, str(tmp_path))
    proc = _start_worker(tmp_path)
    time.sleep(0.4)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    _python(WORKER, str(tmp_path), "once")
    _check_all_done_once(tmp_path)


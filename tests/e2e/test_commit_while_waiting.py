"""A turn's code is committed while the job waits for the model's next reply.

The loop counted a step's writes when the step ended; a step that ran a reply's code and then
waited on the model's next reply (up to `step_timeout`) left them uncommitted all that time,
so a worker killed meanwhile ran the turn's code again on restart, its tool calls included
(found by a new user's trial). Run as users run it: a worker process killed with SIGKILL
while its provider holds the next reply, then restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.e2e.helpers import run_python

TOOL = textwrap.dedent("""
    import sys, statek

    @statek.tool
    def announce(what: str) -> None:
        print(what, flush=True)
""")

SETUP = TOOL + textwrap.dedent("""
    import dbzero as db0
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    agent = statek.Agent("asker", metadata={"MODEL": "holding/m"}, tools=[announce])
    print(statek.StatekClientAPI().submit_new_job(agent, {}).uuid)
    statek.close()
""")

# The provider answers the job's first turn with code that calls a tool (which says so on
# stdout) and holds every later turn: the job waits for its second reply until the kill.
WORKER = TOOL + textwrap.dedent("""
    import asyncio, dbzero as db0
    from statek.providers import ChatReply, add_provider

    class Holding:
        name = "holding"
        async def complete(self, request):
            if len(request.messages) == 1:  # the job's first turn (in any worker), slower
                await asyncio.sleep(0.5)  # than the commit window: the step ending commits
                return ChatReply("```python\\nannounce('tool ran')\\nx = 41\\n```")
            print("asking again", flush=True)
            await asyncio.sleep(3600)

    db0.init(dbzero_root=sys.argv[1]); statek.open_prefix("main", "rw")
    add_provider("holding", Holding())
    statek.start_statek(max_concurrency=4)
""")

READ = textwrap.dedent("""
    import sys, json, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.open_prefix("main", "r")
    job = statek.StatekClientAPI().get_job(sys.argv[2])
    print(json.dumps(dict(job.locals)))
""")


def _start(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root)], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines_until(proc: subprocess.Popen[str], last: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != last:
        line = proc.stdout.readline()
        assert line, f"worker ended early after {lines}"
        lines.append(line.rstrip("\n"))
    return lines


def test_a_killed_worker_does_not_run_a_turns_code_again(tmp_path: Path) -> None:
    job = run_python(SETUP, str(tmp_path)).strip()
    worker = _start(tmp_path)
    try:
        assert _lines_until(worker, "asking again") == ["tool ran", "asking again"]
        # the turn's writes reach the store while the model holds its reply (read by
        # another process, as durability means); before, only when the reply came
        deadline = time.monotonic() + 60
        while json.loads(run_python(READ, str(tmp_path), job)) != {"x": 41}:
            assert time.monotonic() < deadline, "the turn's code was never committed"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        worker = _start(tmp_path)
        assert _lines_until(worker, "asking again") == ["asking again"]  # no "tool ran"
    finally:
        worker.kill()
        worker.wait(timeout=30)

"""`statek agent add/list`: a new user could not submit from the CLI without writing Python
to create the agent first. Run as a user runs them: `python -m statek` processes over one
store, then a worker that runs the job submitted to the new agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.service.conftest import clean_env


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=300)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[-1]


def test_agents_made_on_the_command_line_take_jobs(tmp_path: Path) -> None:
    data = tmp_path / "store"
    made = _cli(data, "agent", "add", "researcher", "--prompt", "You answer with code.",
                "--model", "scripted/demo", "--description", "answers questions")
    assert made.returncode == 0, made.stderr
    researcher = made.stdout.strip()
    assert "exists already" in _one_line_error(_cli(data, "agent", "add", "researcher"))
    refused = _one_line_error(_cli(data, "agent", "add", "bad", "--supervised", "--warmup",
                                   "exit(a + b)"))
    assert ("--warmup must read exactly one outside local (the event is bound to it), it "
            "reads 2: a, b") in refused
    broken = _one_line_error(_cli(data, "agent", "add", "broken", "--supervised", "--warmup",
                                  "exit(ticket"))  # was: "it reads 0: none"
    assert broken == "Error: warmup block 1 of 1 is not valid Python: '(' was never closed at " \
        "line 1"
    assert "--warmup goes with --supervised" in _cli(
        data, "agent", "add", "plain", "--warmup", "x = 1").stderr
    watcher = _cli(data, "agent", "add", "watcher", "--supervised", "--warmup", "exit(ticket)")
    assert watcher.returncode == 0, watcher.stderr
    listed = _cli(data, "agent", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"researcher\t{researcher}\tagent\tanswers questions",
        f"watcher\t{watcher.stdout.strip()}\tsupervised\t"]  # neither refused one was made
    job = _cli(data, "submit", "researcher", "--var", "q=1")
    assert job.returncode == 0, job.stderr
    ran = _cli(data, "worker", "--until-idle")
    assert ran.returncode == 0, ran.stderr
    shown = _cli(data, "show", job.stdout.strip())
    assert "DONE" in shown.stdout and '"ok"' in shown.stdout, shown.stdout

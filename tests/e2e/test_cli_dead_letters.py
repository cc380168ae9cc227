"""`statek dead-letters`: the worker keeps what it cannot apply, with the reason, and a user
had no way to read it but Python against internal classes. Run as a user runs it: `python -m
statek` processes over one store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.service.conftest import clean_env


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_a_message_queued_for_a_job_cancelled_meanwhile_is_listed(tmp_path: Path) -> None:
    data = tmp_path / "store"
    _cli(data, "agent", "add", "helper", "--model", "scripted/demo")
    job = _cli(data, "submit", "helper").stdout.strip()
    _cli(data, "push", job, "are you there?")
    _cli(data, "cancel", job)
    assert _cli(data, "dead-letters").stdout.strip() == "no dead letters"  # not drained yet
    _cli(data, "worker", "--until-idle")
    listed = _cli(data, "dead-letters").stdout.splitlines()
    assert listed[0].split() == ["at", "source", "kind", "target", "reason"]
    assert len(listed) == 2 and f"queue   message  {job}" in listed[1]
    assert "cancelled" in listed[1]
    rows = json.loads(_cli(data, "dead-letters", "--json").stdout)
    assert [(r["source"], r["kind"], r["target"], r["item"]) for r in rows] == [
        ("queue", "message", job, "are you there?")]
    assert rows[0]["at"] > 0

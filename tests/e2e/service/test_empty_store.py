"""A store no job was ever submitted to reads as empty, not as a crash: its root does not
exist yet and a read-only reader (`statek jobs`, `statek show`, the read-only dashboard)
cannot create it. Found by a new user: `statek worker --until-idle` then `statek jobs`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.service.conftest import clean_env


def _statek(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=120)


def test_jobs_on_a_store_with_no_jobs_lists_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ran = _statek(data_dir, "worker", "--offline", "--until-idle")
    assert ran.returncode == 0, ran.stderr
    listed = _statek(data_dir, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    totals = next(line for line in listed.stdout.splitlines() if line.startswith("(all)"))
    assert totals.split()[1:] == ["0"] * 5
    shown = _statek(data_dir, "show", "NOSUCHJOB")
    assert shown.returncode != 0 and "Traceback" not in shown.stderr
    assert "no job with uuid" in shown.stderr

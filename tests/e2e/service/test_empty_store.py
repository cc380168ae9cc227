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


def test_a_damaged_store_file_is_one_line_naming_it(tmp_path: Path) -> None:
    """Random bytes, an empty file, a data dir that is a file: every command printed a
    dbzero traceback ("Not a dbzero file", "CFile::read: fread failed", "File exists")."""
    noise, empty, a_file = tmp_path / "noise", tmp_path / "empty", tmp_path / "a-file"
    noise.mkdir()
    (noise / "statek.db0").write_bytes(bytes(range(256)) * 300)
    empty.mkdir()
    (empty / "statek.db0").write_bytes(b"")
    a_file.write_text("not a directory")
    for data_dir, args in ((noise, ("jobs",)), (noise, ("worker", "--offline", "--until-idle")),
                           (empty, ("worker", "--offline", "--until-idle")),
                           (empty, ("show", "NOSUCHJOB"))):
        ran = _statek(data_dir, *args)
        assert ran.returncode == 1 and "Traceback" not in ran.stderr, (args, ran.stderr)
        error = ran.stderr.strip().splitlines()[-1]
        assert error.startswith(f"Error: the store file {data_dir}/statek.db0 cannot be "
                                "opened: "), error
        assert error.endswith("It is damaged or not a dbzero file; statek does not repair "
                              "store files: restore it from a backup, or move it away to "
                              "start an empty store"), error
    ran = _statek(a_file, "worker", "--offline", "--until-idle")
    assert ran.stderr.strip().splitlines()[-1] == (
        f"Error: cannot open the store at {a_file} (STATEK_DATA_DIR): it is a file, not a "
        "directory")


def test_commands_about_jobs_of_no_store_make_none(tmp_path: Path) -> None:
    """`statek cancel nope` in an empty folder failed rightly but left an empty store."""
    data_dir = tmp_path / "nothing-here"
    for args, why in ((("cancel", "NOPE"), "no job NOPE there"),
                      (("push", "NOPE", "hi"), "no job NOPE there"),
                      (("submit", "nobody"), "no agent 'nobody' there")):
        ran = _statek(data_dir, *args)
        assert ran.returncode == 1, ran.stderr
        assert ran.stderr.strip().startswith(
            f"Error: no store at {data_dir}/statek (STATEK_DATA_DIR): {why}"), ran.stderr
    assert not data_dir.exists()

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from statek import store
from statek.cli import main
from statek.settings import reset_settings_cache


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STATEK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STATEK_DEFAULT_PROVIDER", raising=False)  # the demo chooses it itself
    reset_settings_cache()
    store._runtime.settings = None
    yield tmp_path / "data"
    reset_settings_cache()
    store._runtime.settings = None


def test_demo_runs_twice_on_the_same_store(data_dir: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--helpers", "20"])
    assert first.exit_code == 0, first.output
    assert "dispatcher -> 2470" in first.output  # sum of squares 0..19
    assert "messenger  -> 'hello from the demo'" in first.output
    assert "analyst    -> {'total': 45, 'turns': 2}" in first.output
    assert "store now holds 24 jobs" in first.output
    second = runner.invoke(main, ["demo", "--helpers", "20"])
    assert second.exit_code == 0, second.output
    assert "store now holds 48 jobs" in second.output
    assert "error" not in first.output + second.output
    assert (data_dir / "statek.db0").exists()


def test_the_default_demo_runs_without_an_error(data_dir: Path) -> None:
    """`statek demo` as the README's first command runs it: its dispatcher delegates 200
    helpers in one statement, within the default delegate budgets."""
    done = CliRunner().invoke(main, ["demo"])
    assert done.exit_code == 0, done.output
    assert "dispatcher -> 2646700" in done.output  # sum of squares 0..199
    assert "error" not in done.output


def test_jobs_scales_the_round_and_a_summary_table_follows(data_dir: Path) -> None:
    done = CliRunner().invoke(main, ["demo", "--jobs", "10"])
    assert done.exit_code == 0, done.output
    assert "dispatcher -> 55" in done.output  # 6 helpers: sum of squares 0..5
    assert "store now holds 10 jobs" in done.output
    assert "round summary (10 jobs" in done.output
    helper_row = next(line for line in done.output.splitlines() if "demo-helper" in line)
    assert helper_row.split("│")[2:5] == ["    6 ", "    6 ", "      0 "]  # jobs, done, failed
    assert "jobs DONE" in done.output and "steps/s" in done.output


def test_jobs_and_helpers_are_checked(data_dir: Path) -> None:
    both = CliRunner().invoke(main, ["demo", "--jobs", "10", "--helpers", "3"])
    assert both.exit_code == 2 and "give --helpers or --jobs, not both" in both.output
    few = CliRunner().invoke(main, ["demo", "--jobs", "3"])
    assert few.exit_code == 2 and "--jobs" in few.output and ">=4" in few.output.replace(
        " ", "")


def test_the_live_display_follows_the_round(data_dir: Path) -> None:
    from rich.console import Console

    from statek.demo import Progress, progress_table, run_demo

    frames: list[dict[str, int]] = []
    report = run_demo(5, 10, watch=lambda p: frames.append(dict(p.by_status)))
    assert frames, "the display was never updated"
    assert frames[-1]["DONE"] == report.round_jobs == 9
    assert all(sum(frame.values()) <= 9 for frame in frames)
    console = Console(record=True, width=60)
    console.print(progress_table(Progress([], 0.0, {"DONE": 9, "READY": 2}, 40, 3, 2.0)))
    text = console.export_text()
    assert "jobs DONE" in text and " 9 " in text and "20" in text  # 40 steps in 2 s
    assert "2.0 s" in text and "jobs READY" in text


def test_demo_dashboard_serves_until_interrupted(data_dir: Path) -> None:
    import os
    import queue
    import re
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_")}
    env["STATEK_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen([sys.executable, "-m", "statek", "demo", "--jobs", "8",
                             "--dashboard"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    url = None
    try:
        while not any("still serving" in line for line in seen):
            line = lines.get(timeout=180)  # failure bound only
            assert line is not None, "demo exited:\n" + "".join(seen)
            seen.append(line)
            found = re.search(r"dashboard on (http://\S+)", line)
            url = found.group(1) if found else url
        assert url is not None and url.endswith("/dashboard")
        page = httpx.get(url, timeout=60)
        assert page.status_code == 200 and "demo-helper" in page.text
        listing = httpx.get(url + "/jobs", params={"agent": "demo-helper"}, timeout=60)
        assert listing.text.count('<tr data-job="') == 4
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A producer that opened the store while no worker ran held it for writing, and every worker
started while it lived was refused (a supervisor restarting a crashed worker met an outage:
found by a new user's trial). `open_default_store(when_free="feed")` never takes the store:
its writes wait in the outbox and the worker started later runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.service.conftest import clean_env

PRODUCER = """
import sys, statek
statek.open_default_store(when_held="feed", when_free="feed")
api = statek.StatekClientAPI()
print(api.submit_new_job("helper", {"q": 1}).uuid, flush=True)
sys.stdin.readline()  # alive until the test is done with the worker
"""


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statek", *args], env=clean_env(data_dir),
                          capture_output=True, text=True, timeout=300)


def test_a_worker_starts_while_a_feed_only_producer_lives(tmp_path: Path) -> None:
    data = tmp_path / "store"
    assert _cli(data, "agent", "add", "helper", "--model", "scripted/demo").returncode == 0
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER], env=clean_env(data),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert producer.stdout is not None and producer.stdin is not None
        job = producer.stdout.readline().strip()
        assert job.startswith("ob"), job or producer.stderr.read()
        ran = _cli(data, "worker", "--until-idle")  # refused before: the producer held it
        assert ran.returncode == 0, ran.stderr
        shown = _cli(data, "show", job)
        assert shown.returncode == 0 and "DONE" in shown.stdout, shown.stdout + shown.stderr
        producer.stdin.write("\n")
        producer.stdin.flush()
        assert producer.wait(timeout=60) == 0, producer.stderr.read()
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()


def test_feeding_a_store_that_does_not_exist_says_so(tmp_path: Path) -> None:
    import statek

    with pytest.raises(FileNotFoundError, match=r"no store at .* to feed"):
        statek.open_default_store(tmp_path / "none", when_free="feed")
    assert not (tmp_path / "none").exists()  # nothing was created

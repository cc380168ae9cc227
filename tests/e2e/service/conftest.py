"""A real worker process serving its HTTP API, and a store prepared for it."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

READY_LINE = re.compile(r"http api on (http://\S+)")
START_BOUND_S = 120.0  # failure bound only: the worker prints its URL when it listens

PREPARE = """
import statek
statek.open_default_store()
statek.Agent("helper", metadata={"MODEL": "scripted/any"})
events = statek.SupervisedAgent("collector", metadata={"MODEL": "scripted/any"})
events.update_warmup_def("exit(item)")
statek.commit_all()
statek.close()
"""


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_")}
    env.update({"STATEK_DATA_DIR": str(data_dir), "STATEK_DEFAULT_PROVIDER": "scripted",
                "STATEK_LOG_LEVEL": "INFO", **extra})
    return env


def prepare_store(data_dir: Path) -> None:
    subprocess.run([sys.executable, "-c", PREPARE], env=clean_env(data_dir), check=True,
                   timeout=120, capture_output=True)


class Worker:
    """`statek worker --offline --http-port 0` as a subprocess; `url` once it listens."""

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        self.data_dir = data_dir
        self.env = clean_env(data_dir, **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "statek", "worker", "--offline", "--http-port", "0", *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def _wait_for_url(self) -> str:
        while True:
            try:
                line = self.lines.get(timeout=START_BOUND_S)
            except queue.Empty:
                self.stop()
                raise AssertionError("worker printed no URL:\n" + "".join(self.output)) from None
            if line is None:
                self.proc.wait(timeout=30)
                raise AssertionError(f"worker exited {self.proc.returncode}:\n"
                                     + "".join(self.output))
            found = READY_LINE.search(line)
            if found:
                return found.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("service") / "data"
    prepare_store(folder)
    return folder


@pytest.fixture(scope="module")
def worker(data_dir: Path) -> Iterator[Worker]:
    running = Worker(data_dir)
    try:
        yield running
    finally:
        running.stop()

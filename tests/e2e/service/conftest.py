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
from typing import IO

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


class _Served:
    """A statek process that prints its API's URL once it listens; `url`."""

    def __init__(self, data_dir: Path, command: list[str], env: dict[str, str],
                 url_on_stdout: bool) -> None:
        self.data_dir = data_dir
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "-m", "statek", *command], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        stream = self.proc.stdout if url_on_stdout else self.proc.stderr
        other = self.proc.stderr if url_on_stdout else self.proc.stdout
        threading.Thread(target=self._read, args=(stream, True), daemon=True).start()
        threading.Thread(target=self._read, args=(other, False), daemon=True).start()
        self.url = self._wait_for_url()

    def _read(self, stream: IO[str] | None, watched: bool) -> None:
        assert stream is not None
        for line in stream:
            self.output.append(line)
            if watched:
                self.lines.put(line)
        if watched:
            self.lines.put(None)

    def _wait_for_url(self) -> str:
        while True:
            try:
                line = self.lines.get(timeout=START_BOUND_S)
            except queue.Empty:
                self.stop()
                raise AssertionError("printed no URL:\n" + "".join(self.output)) from None
            if line is None:
                self.proc.wait(timeout=30)
                raise AssertionError(f"exited {self.proc.returncode}:\n"
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


class Worker(_Served):
    """`statek worker --offline --http-port 0` as a subprocess; `url` once it listens."""

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        super().__init__(data_dir, ["worker", "--offline", "--http-port", "0", *args],
                         clean_env(data_dir, **env), url_on_stdout=False)


class Front(_Served):
    """`statek serve --port 0` (the HTTP API in a process of its own) as a subprocess."""

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        super().__init__(data_dir, ["serve", "--port", "0", *args],
                         clean_env(data_dir, **env), url_on_stdout=True)


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

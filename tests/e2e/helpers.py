"""Server processes for the end-to-end suite, and the scripting of the mock model servers.

Every server is a child process on 127.0.0.1 with an OS-chosen port; it is ready when it prints
the line that names its URL (read on a thread that keeps draining its output, so a chatty
server never blocks on a full pipe). Nothing here sleeps to wait.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT = 60.0  # failure bound for a server to come up on a loaded machine
#: uvicorn's line once it listens; with --port 0 it names the port the OS chose
UVICORN_READY = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
TOOL_SERVER_READY = re.compile(r"tool-server ready (http://127\.0\.0\.1:\d+)")

OPENAI_KEY = "e2e-openai-key"
ANTHROPIC_KEY = "e2e-anthropic-key"
ANTHROPIC_VERSION = "2023-06-01"


def _die_with_parent() -> None:
    """In the child before exec (Linux): be sent SIGTERM when the test process dies, so a
    killed test run leaves no server behind."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


class ServerProcess:
    """A child process that prints a readiness line holding its base URL."""

    def __init__(self, name: str, argv: Sequence[str], ready: re.Pattern[str], *,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready = ready
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.url = ""
        self.output: list[str] = []
        self._up = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> str:
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._drain, name=f"{self.name}-output",
                                        daemon=True)
        self._reader.start()
        if not self._up.wait(START_TIMEOUT) or not self.url:
            self.stop()
            raise RuntimeError(f"{self.name} did not report ready within {START_TIMEOUT:g}s; "
                               f"output:\n{self.log()}")
        return self.url

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.output.append(line)
            if not self.url and (found := self.ready.search(line)):
                self.url = found.group(1)
                self._up.set()
        self._up.set()  # exited: start() reports the output instead of waiting on

    def log(self) -> str:
        return "".join(self.output[-60:])

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._reader is not None:
            self._reader.join(timeout=15)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def run_python(code: str, *args: str, timeout: float = 120) -> str:
    """Run `python -c code args...` (a separate process, as a user's script is); its stdout,
    or fail the test with its stderr."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_app(loop_kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run an application's `main` on its own event loop of that kind."""
    factory = None
    if loop_kind == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


# ---------------------------------------------------------------------------- fakellm
class FakeLLM:
    """One `fakellm serve` process (the third-party mock server, PyPI package `fakellm`)
    scripted through its YAML rules file (JSON is YAML) and hot reload."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.config = workdir / f"{name}.yaml"
        self.config.write_text(json.dumps({"version": 1, "rules": []}), encoding="utf-8")
        argv = python_argv("-m", "fakellm.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                           "--config", str(self.config))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.server = ServerProcess(name, argv, UVICORN_READY, env=env, cwd=workdir)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeLLM:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def load(self, rules: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rules (first match wins) and forget every conversation."""
        self.config.write_text(json.dumps({"version": 1, "rules": list(rules)}),
                               encoding="utf-8")
        reloaded = self._admin("post", "/_fakellm/reload")
        assert reloaded["rules"] == len(rules), reloaded
        self._admin("post", "/_fakellm/reset")

    def stats(self) -> dict[str, Any]:
        """{"total_requests", "by_rule": {name: count}, "recent": [...newest first]}."""
        found: dict[str, Any] = self._admin("get", "/_fakellm/stats")
        return found

    def matches(self, rule_name: str) -> int:
        return int(self.stats()["by_rule"].get(rule_name, 0))

    def _admin(self, method: str, path: str) -> Any:
        response = httpx.request(method, self.url + path, timeout=30.0)
        response.raise_for_status()
        return response.json()


def code_reply(code: str) -> str:
    """A model reply the way a real model writes one: prose, then one python block."""
    return f"Here is the next step.\n```python\n{code}\n```"


def rule(name: str, code: str | None = None, *, contains: str | None = None,
         tool_result: str | None = None, model: str | None = None,
         headers: Mapping[str, str] | None = None,
         tool_calls: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One fakellm rule answering with `code` (in a python block) and/or native tool calls."""
    when: dict[str, Any] = {f"header.{k}": v for k, v in (headers or {}).items()}
    if contains is not None:
        when["messages_contain"] = contains
    if tool_result is not None:
        when["tool_result_contains"] = tool_result
    if model is not None:
        when["model_matches"] = model
    respond: dict[str, Any] = {}
    if code is not None:
        respond["content"] = code_reply(code)
    if tool_calls is not None:
        respond["tool_calls"] = [dict(c) for c in tool_calls]
    return {"name": name, "when": when, "respond": respond}


def unmatched_rule(name: str) -> dict[str, Any]:
    """Last rule of every script: a request no rule expected ends its job with a value the
    test's assertions name, instead of an endless fallback conversation."""
    return rule(name, f"exit('UNMATCHED REQUEST ({name})')")


def openai_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {OPENAI_KEY}"}


def anthropic_headers() -> dict[str, str]:
    return {"x-api-key": ANTHROPIC_KEY, "anthropic-version": ANTHROPIC_VERSION}


# ---------------------------------------------------------------------------- tool server
class ToolServer:
    """tests/support/tool_server.py in its own process."""

    SCRIPT = Path(__file__).resolve().parents[1] / "support" / "tool_server.py"

    def __init__(self) -> None:
        self.server = ServerProcess("tool-server", python_argv(str(self.SCRIPT)),
                                    TOOL_SERVER_READY)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ToolServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def counts(self) -> dict[str, int]:
        response = httpx.get(self.url + "/stats", timeout=30.0)
        response.raise_for_status()
        return {str(k): int(v) for k, v in response.json().items()}

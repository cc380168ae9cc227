"""Fixtures of the escape suite: every case runs hostile job code through a real step.

`execution_mode` names how job code is executed: "in-process" (the worker runs it) or
"process" (settings.isolation="process": two executor processes run it, statek/isolation/).
Every case runs against both modes unchanged: the mode is set before the store opens, and
`run_job_step` picks the executor from the settings. A case that cannot hold in one mode says
so with the markers of tests/conftest.py (`in_process_only`, `in_process_xfail`).

A case passes when the attack failed with a clear error (the text it names appears in the
job's console or error) and left no effect: the canary file the payload tries to write does
not exist (checked after every case), and whatever the case attacked (another job, the agent,
the job's own bookkeeping) is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import statek
from statek.executors.utils import run_job_step

#: The modes of tests/conftest.py's `execution_mode` fixture, every case runs in each.
EXECUTION_MODES = ("in-process", "process")


@dataclass
class Attempt:
    """What one hostile job left behind."""

    job: Any
    console: str
    error: str | None
    exit_status: Any

    @property
    def text(self) -> str:
        return f"{self.console}\n{self.error or ''}"

    def refused(self, *fragments: str) -> None:
        """Assert the attack failed and the record says why (any fragment, case-insensitive)."""
        assert self.exit_status != "ESCAPED", f"attack got through: {self.text}"
        low = self.text.lower()
        assert any(f.lower() in low for f in fragments), (
            f"none of {fragments} in the job's record:\n{self.text}"
        )


class InProcessRunner:
    """Runs job code as the worker does: a submitted job, stepped by `run_job_step`."""

    def __init__(self, api: statek.StatekClientAPI, agent: statek.Agent) -> None:
        self.api = api
        self.agent = agent

    def submit(self, source: str, shared: Mapping[str, Any] | None = None,
               agent: Any = None) -> Any:
        return self.api.submit_new_job(agent or self.agent, dict(shared or {}),
                                       warmup_code=source)

    async def step(self, job: Any, steps: int = 1) -> Attempt:
        for _ in range(steps):
            if await run_job_step(job):
                break
        return Attempt(job, "".join(job.console), job.error, job.exit_status)

    async def run(self, source: str, shared: Mapping[str, Any] | None = None,
                  agent: Any = None, steps: int = 1) -> Attempt:
        """Submit `source` as a job's warmup and run up to `steps` steps of it."""
        return await self.step(self.submit(source, shared, agent), steps)


@pytest.fixture
def statek_store(execution_mode: str, statek_store: str) -> str:
    """The store of tests/conftest.py, opened after its `execution_mode` fixture set the mode
    (whichever fixture a case names first)."""
    return statek_store


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A path payloads try to create; it must not exist after the case."""
    path = tmp_path / "escaped.txt"
    yield path
    assert not path.exists(), "the attack wrote a file on the host"


@pytest.fixture
def runner(execution_mode: str, api: statek.StatekClientAPI,
           agent: statek.Agent) -> InProcessRunner:
    if execution_mode in EXECUTION_MODES:  # the step picks the executor from the settings
        return InProcessRunner(api, agent)
    raise AssertionError(f"no runner for execution mode {execution_mode!r}")

"""Structured logs: job context on records emitted within a step, JSON lines, log_level."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek.errors import ConfigurationError
from statek.executors.utils import run_jobs_loop
from statek.observability.logs import JobContextFilter, configure_logging, make_handler
from statek.settings import StatekSettings
from tests.e2e.service.conftest import clean_env, prepare_store

tool_log = logging.getLogger("statek.tests.tool")


@statek.tool
def obs_note(text: str) -> str:
    tool_log.warning("noted %s", text)
    return text


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = make_handler("json", stream)
    logger = logging.getLogger("statek")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_records_within_a_step_carry_the_job(
        json_lines: io.StringIO, api: statek.StatekClientAPI) -> None:
    agent = statek.Agent("noter", "", tools=[obs_note])
    jobs = [api.submit_new_job(agent, {"i": i}, warmup_code=f"obs_note('n{i}')\nexit({i})")
            for i in range(3)]
    tool_log.warning("outside any step")
    await run_jobs_loop(10, queue_prefixes=["test"], auto_terminate=True)
    found = records(json_lines)
    outside = [r for r in found if r["message"] == "outside any step"]
    assert outside and outside[0]["job_id"] is None and outside[0]["agent"] is None
    noted = {r["message"]: r for r in found if str(r["message"]).startswith("noted")}
    assert set(noted) == {"noted n0", "noted n1", "noted n2"}
    for i, job in enumerate(jobs):
        record = noted[f"noted n{i}"]
        assert record["job_id"] == db0.uuid(job)
        assert record["agent"] == "noter"
        assert isinstance(record["step"], int) and record["step"] > 0
        assert record["level"] == "WARNING" and record["logger"] == "statek.tests.tool"
    assert len({r["step"] for r in noted.values()}) == 3  # one step each


async def test_a_job_that_fails_is_logged_with_its_context(
        json_lines: io.StringIO, api: statek.StatekClientAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="statek.step")  # whatever an earlier test set
    agent = statek.Agent("breaker", "")
    job = api.submit_new_job(agent, warmup_code="exit(undefined_name)")
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert job.error is not None
    [ended] = [r for r in records(json_lines)
               if str(r["message"]).startswith("job ended with an error")]
    assert "undefined_name" in str(ended["message"])
    assert ended["job_id"] == db0.uuid(job) and ended["agent"] == "breaker"


def test_text_format_appends_the_job_context() -> None:
    from statek.observability.logs import current_step, step_context

    stream = io.StringIO()
    logger = logging.getLogger("statek.tests.text")
    handler = make_handler("text", stream)
    logger.addHandler(handler)
    ctx = step_context("JOB123", 7, "writer")
    token = current_step.set(ctx)
    try:
        logger.warning("inside")
    finally:
        current_step.reset(token)
        logger.removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("inside [job=JOB123 agent=writer step=7]")


@pytest.fixture
def bare_loggers() -> Iterator[tuple[logging.Logger, logging.Logger]]:
    """The root and "statek" loggers, their handlers and levels restored afterwards."""
    root, logger = logging.getLogger(), logging.getLogger("statek")
    saved = [(x, list(x.handlers), x.level) for x in (root, logger)]
    try:
        yield root, logger
    finally:
        for x, handlers, level in saved:
            for handler in list(x.handlers):
                x.removeHandler(handler)
            for handler in handlers:
                x.addHandler(handler)
            x.setLevel(level)


def test_configure_respects_the_applications_handlers(
        bare_loggers: tuple[logging.Logger, logging.Logger]) -> None:
    root, statek_logger = bare_loggers
    for x in bare_loggers:  # pytest's capture handlers are added around the test body
        for handler in list(x.handlers):
            x.removeHandler(handler)
    statek_logger.setLevel(logging.NOTSET)
    settings = StatekSettings.build(log_level="ERROR", log_format="json")
    application = logging.NullHandler()
    root.addHandler(application)
    assert configure_logging(settings) is False  # the application configured logging
    assert statek_logger.handlers == [] and statek_logger.level == logging.ERROR
    root.removeHandler(application)
    statek_logger.setLevel(logging.NOTSET)
    stream = io.StringIO()
    assert configure_logging(settings, stream=stream) is True  # nobody did: statek does
    assert statek_logger.level == logging.ERROR
    (handler,) = statek_logger.handlers
    assert any(isinstance(f, JobContextFilter) for f in handler.filters)
    logging.getLogger("statek.tests.cfg").warning("below the level")
    logging.getLogger("statek.tests.cfg").error("kept")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "kept"
    assert configure_logging(settings, stream=stream) is False  # configured: not twice
    assert len(statek_logger.handlers) == 1


def test_bad_log_format_is_named() -> None:
    with pytest.raises(ConfigurationError, match="log_format"):
        StatekSettings.build(log_format="yaml")
    assert StatekSettings.build(log_format=" JSON ").log_format == "json"


def test_cli_worker_logs_json_lines(tmp_path: Path) -> None:
    """`statek worker` with STATEK_LOG_FORMAT=json: every stderr line is one JSON object."""
    folder = tmp_path / "data"
    prepare_store(folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "statek", "worker", "--offline", "--http-port", "0"],
        env=clean_env(folder, STATEK_LOG_FORMAT="json"), stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL)
    seen: list[dict[str, object]] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # ends when the worker exits: then the assert below fails
            seen.append(json.loads(line))
            if "http api on" in str(seen[-1]["message"]):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    ready = seen[-1]
    assert "http api on http://127.0.0.1:" in str(ready["message"])
    assert ready["level"] == "INFO" and ready["logger"] == "statek.runner"
    assert ready["job_id"] is None

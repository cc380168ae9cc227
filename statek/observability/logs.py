"""Structured logs: job context on every record emitted within a step, text or JSON lines.

Every statek logger lives under "statek". While a step runs, a context variable holds its
job id, agent and step number; `JobContextFilter` copies them onto each record that passes a
handler it is attached to (statek's own handler, or one the application adds it to), so a
line logged by a provider, a tool or the loop on behalf of a job says which job it was.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from typing import Any

from statek.settings import StatekSettings

ROOT = "statek"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(job_suffix)s"


#: While a step runs: [job id, step number, agent] (the agent is filled in once the step has
#: read its job's definition). A list, not an object: it is made once per step, on the hot path.
StepContext = list[Any]
JOB_ID, STEP, AGENT = 0, 1, 2


def step_context(job_id: str, step: int, agent: str | None = None) -> StepContext:
    return [job_id, step, agent]


current_step: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "statek_step", default=None)


class JobContextFilter(logging.Filter):
    """Adds `job_id`, `agent`, `step` (None outside a step) and `job_suffix` (" [job=...]" for
    the text format) to every record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_step.get()
        if ctx is None:
            record.job_id = record.agent = record.step = None
            record.job_suffix = ""
        else:
            record.job_id, record.step, record.agent = ctx
            record.job_suffix = f" [job={ctx[JOB_ID]} agent={ctx[AGENT]} step={ctx[STEP]}]"
        return True


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "job_suffix", "job_id", "agent", "step"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, job_id, agent,
    step, any `extra=` fields, and the formatted exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            "agent": getattr(record, "agent", None),
            "step": getattr(record, "step", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _StatekHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler statek installs itself (recognised, so configuring twice replaces it)."""


def make_handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) with the job-context filter and the format."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")
    handler = _StatekHandler(sys.stderr if stream is None else stream)
    handler.addFilter(JobContextFilter())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    return handler


def configure_logging(settings: StatekSettings, *, own_process: bool = False,
                      stream: Any = None) -> bool:
    """Apply `log_level` and `log_format`.

    `own_process` (the CLI): the root logger gets statek's handler, replacing one installed
    before. Otherwise (a worker started by an application) the "statek" logger gets it only
    when the application configured no handler, on the root or on "statek"; the application's
    own set-up always wins. True when a handler was installed."""
    logger, root = logging.getLogger(ROOT), logging.getLogger()
    if not own_process and (root.handlers or logger.handlers):  # configured already
        if logger.level == logging.NOTSET:
            logger.setLevel(settings.log_level)
        return False
    target = root if own_process else logger
    for handler in [h for h in target.handlers if isinstance(h, _StatekHandler)]:
        target.removeHandler(handler)
    target.addHandler(make_handler(settings.log_format, stream))
    target.setLevel(settings.log_level)
    logger.setLevel(settings.log_level)
    return True

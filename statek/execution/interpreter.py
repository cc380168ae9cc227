"""Run a block of job code statement by statement against the job's persisted locals.

After each statement the names it bound are written back to the job, so a job resumes at the
first statement that did not complete and never re-runs one that did. Values dbzero cannot
store (functions, modules, generators) live in a per-process side table instead; `def`,
`class` and `import` statements are also remembered as source and re-run when a job's
namespace is rebuilt in a new process, so they survive restarts.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statek.errors import SandboxViolation
from statek.execution.job_functions import JobFunctions
from statek.execution.signals import AwaitTool, JobExit
from statek.models.future import Future, SuspendJob
from statek.sandbox import (
    CompiledBlock,
    CompiledStatement,
    SandboxPolicy,
    compile_block,
    exec_globals,
)

#: job uuid -> {name: value} for locals dbzero cannot store (lost when the process ends).
_transient: dict[str, dict[str, Any]] = {}

COMPLETED, EXITED, SUSPENDED, FAILED, AWAITING_TOOL = (
    "completed", "exited", "suspended", "failed", "awaiting_tool",
)  # fmt: skip


@dataclass(slots=True)
class Outcome:
    """How running a block ended: `kind` is one of the module constants."""

    kind: str
    next_stmt: int = 0
    exit_status: Any = None
    future: Any = None
    error: str | None = None
    tool: AwaitTool | None = None


def forget_transient(job_uuid: str) -> None:
    _transient.pop(job_uuid, None)


class JobNamespace:
    """The globals job code runs in, bound to one job for one step."""

    def __init__(self, job: Any, job_uuid: str, policy: SandboxPolicy, functions: JobFunctions,
                 on_violation: Callable[[SandboxViolation], None]) -> None:
        self.job = job
        self.job_uuid = job_uuid
        self.policy = policy
        jobdef = job.jobdef
        extra = functions.builtins(tuple(jobdef.agent.tool_names), jobdef.params)
        self.globals = exec_globals(policy, print_sink=job.write_console, extra_builtins=extra,
                                    on_violation=on_violation)
        stored = job.vars
        if stored is not None:
            self.globals.update(job.locals_dict())
        definitions = job.definitions
        if definitions is not None:
            self._replay_definitions(definitions)
        side = _transient.get(job_uuid)
        if side:
            self.globals.update(side)

    def _replay_definitions(self, definitions: Any) -> None:
        for source in definitions.values():
            try:
                block = compile_block(source, self.policy)
                for stmt in block.statements:
                    exec(stmt.code, self.globals)  # noqa: S102 - sandboxed job code
            except Exception as exc:  # noqa: BLE001 - report, do not stop the job
                self.job.write_console(f"[statek] could not restore definition: {exc}\n")

    def persist(self, stmt: CompiledStatement) -> None:
        """Write the names `stmt` bound back to the job (or the side table)."""
        g = self.globals
        stored: dict[str, Any] = {}
        side: dict[str, Any] | None = None
        for name in stmt.assigned:
            if name not in g:
                continue
            value = g[name]
            if _storable_fast(value):
                stored[name] = value
            else:
                if side is None:
                    side = _transient.setdefault(self.job_uuid, {})
                side[name] = value
        if stored or stmt.deleted:
            try:
                self.job.bind_locals(stored, stmt.deleted)
            except (TypeError, AttributeError, OverflowError, ValueError):
                # a nested value dbzero refused: keep it in memory, bind the rest one by one
                for name, value in stored.items():
                    try:
                        self.job.bind_locals({name: value})
                    except (TypeError, AttributeError, OverflowError, ValueError):
                        _transient.setdefault(self.job_uuid, {})[name] = value
            self._refresh_containers(stored)
        if stmt.deleted:
            side_table = _transient.get(self.job_uuid)
            if side_table:
                for name in stmt.deleted:
                    side_table.pop(name, None)
        if stmt.assigned and stmt.source.startswith(_DEFINITION_STARTS):
            self.job.remember_definition(stmt.assigned, stmt.source)

    def _refresh_containers(self, stored: dict[str, Any]) -> None:
        """Point the namespace at the persisted copy of new containers, so later in-place
        changes (`xs.append(1)`) reach storage."""
        vars_ = self.job.vars
        for name, value in stored.items():
            if isinstance(value, list | dict | set):
                self.globals[name] = vars_[name]


_DEFINITION_STARTS = ("def ", "async def ", "class ", "import ", "from ", "@")


def _storable_fast(value: Any) -> bool:
    from statek.models.storable import is_storable

    if isinstance(value, str | int | float | bool | type(None)):
        return not isinstance(value, int) or -(2**63) <= value < 2**63
    return is_storable(value)


def run_block(ns: JobNamespace, functions: JobFunctions, block: CompiledBlock,
              start: int) -> Outcome:
    """Run statements `start...` of `block`; stop at exit, suspension, error or an async tool."""
    g = ns.globals
    job = ns.job
    statements = block.statements
    for index in range(start, len(statements)):
        stmt = statements[index]
        functions.start_statement(index)
        try:
            if stmt.echo:
                value = eval(stmt.code, g)  # noqa: S307 - sandboxed job code
                if isinstance(value, Future):
                    value.value  # noqa: B018 - a bare future statement waits for it
                elif value is not None:
                    job.write_console(repr(value) + "\n")
            else:
                exec(stmt.code, g)  # noqa: S102 - sandboxed job code
        except JobExit as done:
            ns.persist(stmt)
            return Outcome(EXITED, index + 1, exit_status=done.status)
        except SuspendJob as wait:
            return Outcome(SUSPENDED, index, future=wait.future)
        except AwaitTool as call:
            return Outcome(AWAITING_TOOL, index, tool=call)
        except SandboxViolation as exc:
            return Outcome(FAILED, index + 1, error=f"SandboxViolation: {exc}")
        except Exception as exc:  # noqa: BLE001 - job code errors are data, not crashes
            return Outcome(FAILED, index + 1, error=_format_error(exc, stmt))
        ns.persist(stmt)
        functions.statement_done()
    return Outcome(COMPLETED, len(statements))


def _format_error(exc: BaseException, stmt: CompiledStatement) -> str:
    """The job-code part of a traceback: frames from the job's own code only."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith("<")]
    lines = ["Traceback (most recent call last):\n"]
    for frame in frames or []:
        where = f"line {frame.lineno}" if frame.lineno else "line ?"
        text = f"    {frame.line}\n" if frame.line else ""
        lines.append(f"  {where}, in {frame.name}\n{text}")
    if not frames:
        lines.append(f"  line {stmt.lineno}\n")
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)

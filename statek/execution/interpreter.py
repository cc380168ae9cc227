"""Run a block of job code statement by statement against the job's persisted locals.

After each statement the names it bound are written back to the job, so a job resumes at the
first statement that did not complete and never re-runs one that did. Values dbzero cannot
store (functions, modules, generators, classes the job defined) live in a per-process side
table instead; `def`, `class` and `import` statements are also remembered as source and re-run
when a job's namespace is rebuilt in a new process, so they survive restarts.

Functions, generators and classes keep referring to the globals dict they were made in, so a
job holding any of them keeps running in that same dict from step to step (refreshed with the
persisted locals and this step's builtins) rather than a new one: otherwise its functions
would go on reading the values their globals had when they were defined.
"""

from __future__ import annotations

import decimal
import enum
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType, GeneratorType, MethodType
from typing import Any

from statek import worker_state
from statek.errors import SandboxViolation
from statek.execution.control_flow import AwaitTool, JobExit
from statek.execution.harness import (
    GUARD,
    CodeBudget,
    CodeGuard,
    StepBudgetExceeded,
    budget_error,
    step_budget,
)
from statek.execution.job_functions import JobFunctions
from statek.execution.jobdef_facts import DefinitionInfo, definition_info
from statek.models.future import ControlSignal, Future, SuspendJob
from statek.models.job_locals import StoredLocals, on_external_bind
from statek.models.storable import unstorable_reason
from statek.models.value_checks import allow_persisted_writes as _allow_persisted_writes
from statek.models.value_checks import can_persist as can_persist
from statek.sandbox import (
    JOB_FILENAME,
    CompiledBlock,
    CompiledStatement,
    SandboxPolicy,
    compile_block,
    exec_globals,
    rebind_exec_globals,
)

# The side tables live on the worker's state owner (statek.worker_state), per job uuid:
#   transient:         {name: value} for locals dbzero cannot store (lost when the process ends)
#   namespaces:        (policy, globals) for jobs whose transient values refer to their globals
#   scalar_namespaces: kept namespaces (see JobNamespace.keep); least recently kept dropped first


@dataclass(slots=True)
class ScalarNamespace:
    """The namespace of a job whose locals are all inline scalars, kept between its steps."""

    policy: SandboxPolicy
    globals: dict[str, Any]
    inline: dict[str, Any]  # the stored scalars, as last written
    functions: JobFunctions  # what the namespace's builtins are bound to


SCALAR_NAMESPACES = 2048

#: `__name__` of job namespaces, hence `__module__` of the classes job code defines.
_JOB_MODULE = "__statek_job__"

class BlockEnd(enum.Enum):
    """How running a block of job code ended (not a job status: a block that ends
    WAITING_ON_FUTURE is what makes the job SUSPENDED). The values are the wire names an
    isolated executor sends."""

    COMPLETED = "completed"  # every statement ran
    EXITED = "exited"  # exit() was called
    WAITING_ON_FUTURE = "waiting_on_future"  # a statement read an unready Future.value
    FAILED = "failed"  # a statement raised (or the code budget ran out: `fatal`)
    AWAITING_TOOL = "awaiting_tool"  # a statement called an async tool


# module-level aliases: a global read, not an enum class attribute lookup, on the hot path
COMPLETED = BlockEnd.COMPLETED
EXITED = BlockEnd.EXITED
WAITING_ON_FUTURE = BlockEnd.WAITING_ON_FUTURE
FAILED = BlockEnd.FAILED
AWAITING_TOOL = BlockEnd.AWAITING_TOOL


@dataclass(slots=True)
class Outcome:
    """How running a block ended."""

    kind: BlockEnd
    next_stmt: int = 0
    exit_status: Any = None
    future: Any = None
    error: str | None = None
    tool: AwaitTool | None = None
    fatal: bool = False  # the job ends (its step's code budget is used up)


@on_external_bind
def _drop_scalar_namespace(job_uuid: str) -> None:
    worker_state.current().scalar_namespaces.pop(job_uuid, None)


class JobNamespace:
    """The globals job code runs in, bound to one job for one step."""

    def __init__(self, job: Any, job_uuid: str, policy: SandboxPolicy, code_key: str,
                 on_violation: Callable[[SandboxViolation], None],
                 info: DefinitionInfo | None = None,
                 state: worker_state.WorkerState | None = None) -> None:
        self.job = job
        self.job_uuid = job_uuid
        self.policy = policy
        state = self.state = worker_state.current() if state is None else state
        scalar = state.scalar_namespaces.pop(job_uuid, None)
        if scalar is not None and scalar.policy is policy:
            # the builtins still hold this job's functions: reset them, rebind print and hook
            self.functions = scalar.functions
            self.functions.reset(job, code_key)
            g = self.globals = scalar.globals
            self.functions.on_violation = on_violation
            rebind_exec_globals(g, policy, print_sink=self.functions.write,
                                on_violation=self.functions.violation)
            self.stored = StoredLocals.known(job, scalar.inline)
            self._has_definitions = False
            return
        if info is None:
            info = definition_info(job.jobdef, state)
        functions = self.functions = JobFunctions(job, code_key)
        functions.on_violation = on_violation
        extra = functions.builtins(info.tool_names, info.params_view)
        fresh = exec_globals(policy, print_sink=functions.write, extra_builtins=extra,
                             on_violation=functions.violation)
        if policy.restricted:
            _allow_persisted_writes(fresh)
        definitions = job.definitions
        self._has_definitions = definitions is not None
        self.stored = StoredLocals(job)  # read once per step, then kept in step with writes
        persisted = self.stored.values()
        side = state.transient.get(job_uuid)
        kept = state.namespaces.get(job_uuid)
        if kept is not None and kept[0] is policy:
            # Last step's dict, so the functions made then see today's values; the builtins
            # dict is updated in place because those functions hold on to it as well.
            g = kept[1]
            g["__builtins__"].update(fresh.pop("__builtins__"))
            g.update(fresh)
            g.update(persisted)
            if side:
                g.update(side)
            self.globals = g
            return
        g = self.globals = fresh
        g.update(persisted)
        if side:
            g.update(side)
        if definitions is not None:
            self._replay_definitions(definitions)

    def keep(self) -> None:
        """After a step that left the namespace in step with storage: keep it for the job's
        next step if it holds nothing but inline scalars (so it refers to no dbzero object
        and has nothing to refresh), sparing the next step a rebuild (~10 µs)."""
        uuid = self.job_uuid
        state = self.state
        if (self.stored.scalars_only and not self._has_definitions
                and uuid not in state.transient and uuid not in state.namespaces):
            self.functions.job = None  # kept objects hold no dbzero object
            kept = state.scalar_namespaces
            kept[uuid] = ScalarNamespace(self.policy, self.globals, self.stored.inline,
                                         self.functions)
            if len(kept) > SCALAR_NAMESPACES:
                kept.popitem(last=False)

    def _replay_definitions(self, definitions: Any) -> None:
        """Re-run remembered def/class/import statements (new process or new policy)."""
        g = self.globals
        names = list(definitions.keys())
        errors, _ = replay_sources([definitions[name] for name in names], self.policy, g)
        for error in errors:
            self.job.write_console(f"[statek] could not restore definition: {error}\n")
        held = {name: g[name] for name in names if name in g and not can_persist(g[name])}
        if held:
            self.state.transient.setdefault(self.job_uuid, {}).update(held)
            if any(_needs_namespace(value) for value in held.values()):
                self.state.namespaces[self.job_uuid] = (self.policy, g)

    def persist(self, stmt: CompiledStatement) -> None:
        """Write the names `stmt` bound back to the job (or the side table)."""
        g = self.globals
        stored: dict[str, Any] = {}
        held: dict[str, Any] | None = None  # unstorable values this statement bound
        for name in stmt.assigned:
            if name not in g:
                continue
            value = g[name]
            if can_persist(value):
                stored[name] = value
            else:
                if held is None:
                    held = {}
                held[name] = value
        deleted = stmt.deleted
        if stored or deleted:
            try:
                self.stored.bind(stored, deleted)
            except (TypeError, AttributeError, OverflowError, ValueError):
                # a nested value dbzero refused: keep it in memory, bind the rest one by one
                self.stored = StoredLocals(self.job)
                for name, value in list(stored.items()):
                    try:
                        self.stored.bind({name: value})
                    except (TypeError, AttributeError, OverflowError, ValueError):
                        del stored[name]
                        if held is None:
                            held = {}
                        held[name] = value
            self._refresh_containers(stored)
        side = self.state.transient.get(self.job_uuid)
        if side:
            for name in stored:
                side.pop(name, None)
            for name in deleted:
                side.pop(name, None)
        if held:
            self._hold(held, side)
        if stmt.assigned and stmt.source.startswith(_DEFINITION_STARTS):
            self.job.remember_definition(stmt.assigned, stmt.source)
            self._has_definitions = True
        elif self._has_definitions and (stored or held or deleted):
            # rebound by other code: a restart must not bring the old definition back
            definitions = self.job.definitions
            for name in (*stored, *(held or ()), *deleted):
                if name in definitions:
                    del definitions[name]

    def _hold(self, held: dict[str, Any], side: dict[str, Any] | None) -> None:
        """Keep unstorable values in the side table (and, if they need it, the namespace)."""
        if side is None:
            side = self.state.transient[self.job_uuid] = {}
        side.update(held)
        for name, value in held.items():
            if type(value) in _PLAIN_DATA:  # data the job may expect to keep: say it won't
                self.job.write_console(
                    f"[statek] {name} is kept in memory only (lost if the worker restarts): "
                    f"{unstorable_reason(value)}\n")
        if any(_needs_namespace(value) for value in held.values()):
            self.state.namespaces[self.job_uuid] = (self.policy, self.globals)
        # an older stored value of the name must not come back after a restart
        stale = tuple(name for name in held if name in self.stored)
        if stale:
            self.stored.bind({}, stale)

    def _refresh_containers(self, stored: dict[str, Any]) -> None:
        """Point the namespace at the persisted copy of new containers, so later in-place
        changes (`xs.append(1)`) reach storage."""
        for name, value in stored.items():
            if isinstance(value, list | dict | set):
                self.globals[name] = self.stored.persisted(name)

    def undo_partial(self, stmt: CompiledStatement) -> None:
        """Before `stmt` runs again (after an async tool, or on resume), restore the names
        its interrupted run rebound, so `total = total + tool(i)` in a loop counts once.
        (In-place changes to persisted containers are not undone.)"""
        g = self.globals
        saved = StoredLocals(self.job).values()
        side = self.state.transient.get(self.job_uuid) or {}
        for name in (*stmt.assigned, *stmt.deleted):
            if name in saved:
                g[name] = saved[name]
            elif name in side:
                g[name] = side[name]
            else:
                g.pop(name, None)


_NEVER = float("inf")
#: Types of plain data: held in memory only when dbzero cannot store the value (an int past
#: 64 bits, text with a NUL...), which the job is told; functions, modules and the job's own
#: objects are held silently (their statements are replayed).
_PLAIN_DATA = frozenset({int, str, bytes, list, tuple, dict, set, frozenset, decimal.Decimal})
_DEFINITION_STARTS = ("def ", "async def ", "class ", "import ", "from ", "@")


def _needs_namespace(value: Any) -> bool:
    """Whether `value` goes on using the globals it was made in."""
    if isinstance(value, FunctionType | GeneratorType | MethodType):
        return True
    if isinstance(value, type):
        return value.__module__ == _JOB_MODULE
    return type(value).__module__ == _JOB_MODULE  # an instance of a class the job defined


def replay_sources(sources: Any, policy: SandboxPolicy,
                   g: dict[str, Any]) -> tuple[list[BaseException], set[str]]:
    """Run remembered def/class/import statements in `g`: (the errors of those that failed,
    the names every statement bound). dbzero dicts are not insertion-ordered, so a
    definition that needs another one (a decorator, a base class) may come first: those
    failing with NameError are retried for as long as others succeed."""
    pending = [source for source in dict.fromkeys(sources) if type(source) is str]
    errors: dict[str, BaseException] = {}
    names: set[str] = set()
    while pending:
        retry: list[str] = []
        for source in pending:
            try:
                block = compile_block(source, policy)
                for stmt in block.statements:
                    names.update(stmt.assigned)
                    exec(stmt.code, g)
            except NameError as exc:
                retry.append(source)
                errors[source] = exc
            except BaseException as exc:  # job code's, whatever it is
                errors[source] = exc
            else:
                errors.pop(source, None)
        if len(retry) == len(pending):
            break
        pending = retry
    return list(errors.values()), names


def run_block(ns: JobNamespace, functions: JobFunctions, block: CompiledBlock,
              start: int) -> Outcome:
    """Run statements `start...` of `block`; stop at exit, suspension, error, an async tool
    or the step's code budget (see `harness.CodeGuard`)."""
    guard = GUARD
    budget = step_budget.get()
    began = _arm(guard, budget, ns.job_uuid)
    if began is None:  # earlier runs of this step spent the budget
        assert budget is not None
        return Outcome(FAILED, start, error=budget_error(budget), fatal=True)
    try:
        outcome = _run_statements(ns, functions, block, start, guard)
    except StepBudgetExceeded:  # landed between statements: still this run's budget
        outcome = Outcome(FAILED, start, error="", fatal=True)
    finally:
        # first, inline: the watchdog's handler may run on entry to any function, and it
        # raises only while `active`; inside _disarm's call it would escape this finally
        guard.active = False
        _disarm(guard, budget, began)
    if outcome.fatal and budget is not None:
        outcome.error = budget_error(budget)
    return outcome


def call_guarded(job_uuid: str, budget: CodeBudget | None, func: Callable[..., Any], /,
                 *args: Any, **kwargs: Any) -> Any:
    """`func(*args, **kwargs)` in the worker's thread but outside a run of job code (a sync
    tool the model called natively, or job code's call from an isolated executor), under
    `budget` (the step's code budget, charged with the call's time) and the hard limit, as
    when job code calls a sync tool in process: the budget covers "statements and the sync
    tools they call". The caller passes the budget: a call served from an executor's reader
    callback runs in the context of whichever step started that reader, not its own.
    Raises StepBudgetExceeded past the budget, also when the tool caught the watchdog's."""
    guard = GUARD
    began = _arm(guard, budget, job_uuid)
    if began is None:
        raise StepBudgetExceeded
    try:
        guard.active = True
        value = func(*args, **kwargs)
    finally:
        guard.active = False  # first, inline: see run_block
        _disarm(guard, budget, began)
    if guard.tripped:
        raise StepBudgetExceeded
    return value


def _arm(guard: CodeGuard, budget: CodeBudget | None, job_uuid: str) -> float | None:
    """Start one run of job code for the watchdogs: its deadline and its heartbeat. Returns
    when the budget's clock started (0.0: no budget), or None when it is already spent."""
    guard.seq += 1
    guard.tripped = False
    began = 0.0
    if budget is not None and budget.limit > 0:
        if budget.left <= 0:
            return None
        began = time.monotonic()
        guard.deadline = began + budget.left
    else:
        guard.deadline = _NEVER
    if guard.unbeat is not None:
        guard.beat(job_uuid)  # type: ignore[misc]
    guard.running = True
    return began


def _disarm(guard: CodeGuard, budget: CodeBudget | None, began: float) -> None:
    """End the run `_arm` started (its caller has cleared `guard.active` already), charging
    its time to the step's budget."""
    guard.running = False
    if guard.unbeat is not None:
        guard.unbeat()
    if began and budget is not None:
        budget.left -= time.monotonic() - began


def _run_statements(ns: JobNamespace, functions: JobFunctions, block: CompiledBlock,
                    start: int, guard: CodeGuard) -> Outcome:
    g = ns.globals
    job = ns.job
    statements = block.statements
    for index in range(start, len(statements)):
        if guard.tripped:
            return Outcome(FAILED, index, fatal=True)
        stmt = statements[index]
        functions.start_statement(index)
        _forget_signal()
        try:
            guard.active = True  # from here to the end of the statement: job code
            if stmt.echo:
                value = eval(stmt.code, g)
                if isinstance(value, Future):
                    value.value  # noqa: B018 - a bare future statement waits for it
                elif value is not None:
                    job.write_console(repr(value) + "\n")
            else:
                exec(stmt.code, g)
            guard.active = False
        except ControlSignal:
            guard.active = False
            if guard.tripped:
                return Outcome(FAILED, index, fatal=True)
            return _stopped(ns, stmt, index)
        except SandboxViolation as exc:
            guard.active = False
            if guard.tripped:
                return Outcome(FAILED, index, fatal=True)
            if ControlSignal.pending is not None:
                return _stopped(ns, stmt, index)
            return Outcome(FAILED, index + 1, error=f"SandboxViolation: {exc}")
        except BaseException as exc:  # anything job code raises, BaseException included
            guard.active = False
            if guard.tripped or isinstance(exc, StepBudgetExceeded):
                return Outcome(FAILED, index, fatal=True)
            if ControlSignal.pending is not None:
                return _stopped(ns, stmt, index)
            return Outcome(FAILED, index + 1, error=_format_error(exc, stmt, block.source))
        if guard.tripped:
            return Outcome(FAILED, index, fatal=True)
        if ControlSignal.pending is not None:  # swallowed by job code: takes effect anyway
            return _stopped(ns, stmt, index)
        if stmt.assigned or stmt.deleted:
            ns.persist(stmt)
        functions.statement_done()
    return Outcome(COMPLETED, len(statements))


def _forget_signal() -> None:
    """Clear the pending control signal. A function, not an inline assignment: mypy (and so
    mypyc) would narrow `ControlSignal.pending` to None for the rest of the statement loop
    and drop its `is not None` checks as unreachable."""
    ControlSignal.pending = None


def _stopped(ns: JobNamespace, stmt: CompiledStatement, index: int) -> Outcome:
    """The outcome of the first control signal statement `index` raised."""
    signal = ControlSignal.pending
    ControlSignal.pending = None
    if isinstance(signal, JobExit):
        ns.persist(stmt)
        return Outcome(EXITED, index + 1, exit_status=signal.status)
    ns.undo_partial(stmt)
    ns.functions.drop_printed()  # the statement runs again from its start
    if isinstance(signal, SuspendJob):
        return Outcome(WAITING_ON_FUTURE, index, future=signal.future)
    assert isinstance(signal, AwaitTool)
    return Outcome(AWAITING_TOOL, index, tool=signal)


def _format_error(exc: BaseException, stmt: CompiledStatement, source: str) -> str:
    """The job-code part of a traceback: frames from the job's own code only, with the text
    of the failing top-level line (a function's frame may come from another block: no text)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith("<")]
    lines = ["Traceback (most recent call last):\n"]
    source_lines: list[str] | None = None
    for frame in frames:
        where = f"line {frame.lineno}" if frame.lineno else "line ?"
        text = frame.line
        if not text and frame.filename == JOB_FILENAME and frame.name == "<module>":
            if source_lines is None:
                source_lines = source.splitlines()
            if frame.lineno and 0 < frame.lineno <= len(source_lines):
                text = source_lines[frame.lineno - 1].strip()
        lines.append(f"  {where}, in {frame.name}\n" + (f"    {text}\n" if text else ""))
    if not frames:
        lines.append(f"  line {stmt.lineno}\n")
    try:
        lines.extend(traceback.format_exception_only(type(exc), exc))
    except BaseException:  # a job's exception whose str() itself fails
        lines.append(f"{type(exc).__name__}: <its message could not be shown>\n")
    return "".join(lines)

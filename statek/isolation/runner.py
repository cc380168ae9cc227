"""Phase 4 of a step (run code: the job's pending code) in an executor process.

The scheduler keeps all storage: it compiles the block (for the statements' bindings), sends
what a run needs (source, resume point, the persisted locals as plain values, definitions,
tool names, params), serves the executor's calls while it runs (delegate, sleep, futures,
sync tools, each in its own transition) and applies the outcome in one transition: console
output, the bindings of the completed statements, remembered definitions, the resume point.
As in-process, nothing of a block is committed before that transition (or the one before an
async tool call), so a committed statement never runs again; calls that make futures are
replay-safe through `job.sites`, as in-process.
"""

from __future__ import annotations

import datetime
import decimal
import os
import sys
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import store, worker_state
from statek.errors import SandboxViolation
from statek.execution import waiting
from statek.execution.control_flow import JobExit
from statek.execution.harness import CodeBudget, StepBudgetExceeded, budget_error, step_budget
from statek.execution.interpreter import (
    _DEFINITION_STARTS,
    AWAITING_TOOL,
    COMPLETED,
    EXITED,
    FAILED,
    WAITING_ON_FUTURE,
    BlockEnd,
    Outcome,
    call_guarded,
    can_persist,
)
from statek.execution.job_functions import JobFunctions, stored_callable_problem
from statek.isolation.pool import ExecutorLost, PoolConfig, current_pool, pool_for
from statek.isolation.protocol import Opaque, ProtocolError, Ref, encode_exception
from statek.models.containers import PLAIN_TYPES, kind_of_type, plain_copy
from statek.models.future import ControlSignal, Future
from statek.models.job_locals import StoredLocals
from statek.models.status import DONE
from statek.observability import hooks
from statek.sandbox import CompiledBlock, SandboxPolicy, compile_block
from statek.sandbox.isolation import memo_attribute, memo_rule
from statek.sandbox.policy import DEFAULT_ALLOWED_IMPORTS, DENIED_ATTRIBUTES
from statek.tools import find_tool, tool_call_key

if TYPE_CHECKING:
    from statek.execution.step import _Step

#: the wire names an executor sends (BlockEnd's values) -> the kinds
_KINDS = {kind.value: kind for kind in BlockEnd}
_SCALARS = (str, int, float, bool, type(None), bytes)
_VALUES = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal)
#: Modules job code may import, loaded by each executor before its limits apply.
PRELOAD = tuple(sorted(DEFAULT_ALLOWED_IMPORTS))


# --- what a job's executor may refer to ------------------------------------------------------


class RefTable:
    """The stored objects and host values handed to one job's executor, by token: an
    executor can only name what it was given (memo objects by uuid, others by number)."""

    __slots__ = ("memos", "opaque", "opaque_ids")

    def __init__(self) -> None:
        self.memos: set[str] = set()
        self.opaque: dict[str, Any] = {}
        self.opaque_ids: dict[int, str] = {}

    def to_child(self, value: Any, depth: int = 0) -> Any:
        """`value` as plain data for the executor (stored containers become plain ones)."""
        kind = type(value)
        if kind in _SCALARS or kind in _VALUES:
            return value
        if depth > 64:
            return self._opaque(value)
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            return kind(self.to_child(item, depth + 1) for item in value)
        if kind is dict:
            return {self.to_child(k, depth + 1): self.to_child(v, depth + 1)
                    for k, v in value.items()}
        stored_kind = kind_of_type(kind)  # a dbzero container: sent as its plain counterpart
        if stored_kind is not None:
            plain = PLAIN_TYPES[stored_kind]
            if plain is dict:
                return {self.to_child(k, depth + 1): self.to_child(v, depth + 1)
                        for k, v in value.items()}
            if plain is bytearray:
                return plain_copy(value)
            return plain(self.to_child(item, depth + 1) for item in value)
        if db0.is_memo(value):
            token = db0.uuid(value)
            self.memos.add(token)
            return Ref(token, f"{kind.__module__}.{kind.__qualname__}")
        return self._opaque(value)

    def _opaque(self, value: Any) -> Opaque:
        token = self.opaque_ids.get(id(value))
        if token is None or self.opaque.get(token) is not value:
            token = f"o{len(self.opaque)}"
            self.opaque[token] = value
            self.opaque_ids[id(value)] = token
        return Opaque(token, type(value).__name__)

    def from_child(self, value: Any, depth: int = 0) -> Any:
        """A value from the executor with its tokens resolved; ProtocolError for a token
        it was never given or anything but plain data."""
        kind = type(value)
        if kind in _SCALARS or kind in _VALUES or kind is complex:
            return value
        if depth > 64:
            raise ProtocolError("nesting deeper than 64 levels")
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            return kind(self.from_child(item, depth + 1) for item in value)
        if kind is dict:
            return {self.from_child(k, depth + 1): self.from_child(v, depth + 1)
                    for k, v in value.items()}
        if kind is Opaque:
            if value.token not in self.opaque:
                raise ProtocolError("the executor named a host value it was never given")
            return self.opaque[value.token]
        if kind is Ref:
            if value.token not in self.memos:
                raise ProtocolError("the executor named a stored object it was never given")
            return db0.fetch(value.token)
        raise ProtocolError(f"{kind.__name__} is not plain data")


_MAX_TABLES = 65_536


def table_for(job_uuid: str) -> RefTable:
    """The job's reference table (per job on the worker's state owner, statek.worker_state)."""
    tables = worker_state.current().ref_tables
    table = tables.get(job_uuid)
    if table is None:
        table = tables[job_uuid] = RefTable()
        if len(tables) > _MAX_TABLES:
            tables.popitem(last=False)
    return table


@store.on_close
def forget_all() -> None:
    """The store closed (as at a restart): executors forget every job (the worker's state
    owner drops the reference tables)."""
    from statek.isolation.pool import current_pool

    pool = current_pool()
    if pool is not None:
        pool.reset()


# --- the request ------------------------------------------------------------------------------

def _definition_parts(step: _Step) -> tuple[dict[str, tuple[bool, str]], Any]:
    """definition uuid -> (tools {name: (is_async, signature)}, params as plain data), kept
    on the worker's state owner (`isolation_parts`)."""
    defn = step.defn
    parts = worker_state.current().isolation_parts
    found = parts.get(defn.uuid)
    if found is None:
        tools = {}
        for name in defn.tool_names:
            info = find_tool(name)
            if info is not None:
                tools[name] = (info.is_async, info.signature)
        found = (tools, _plain_params(defn.params_view))
        if len(parts) > 4096:
            parts.clear()
        parts[defn.uuid] = found
    return found


def _plain_params(value: Any) -> Any:
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {k: _plain_params(value[k]) for k in value.keys()}  # noqa: SIM118
    if isinstance(value, tuple | list):
        return [_plain_params(v) for v in value]
    if isinstance(value, frozenset | set):
        return {_plain_params(v) for v in value}
    return value


def _policy_spec(policy: SandboxPolicy) -> tuple[Any, ...]:
    return (policy.restricted, tuple(sorted(policy.allowed_imports)), policy.max_source_chars,
            policy.max_ast_nodes)


def pool_config() -> PoolConfig:
    cfg = store.settings()
    processes = getattr(cfg, "executor_processes", None) or os.cpu_count() or 1
    return PoolConfig(processes=int(processes),
                      wall_timeout=float(getattr(cfg, "executor_step_timeout", 10.0)),
                      cpu_seconds=int(getattr(cfg, "executor_cpu_seconds", 10)),
                      memory_mb=int(getattr(cfg, "executor_memory_mb", 1024)),
                      open_files=int(getattr(cfg, "executor_open_files", 64)),
                      preload=PRELOAD)


def _request(step: _Step, source: str, key: str, start: int, policy: SandboxPolicy,
             table: RefTable, results: dict[str, Any]) -> dict[str, Any]:
    job = step.job
    persisted = StoredLocals(job).values()
    tools, params = _definition_parts(step)
    definitions = job.definitions
    request: dict[str, Any] = {
        "job": step.uuid, "key": key, "source": source, "start": start,
        "policy": _policy_spec(policy),
        "locals": {name: table.to_child(value) for name, value in persisted.items()},
        "tools": tools, "params": params,
        "cpu": int(getattr(store.settings(), "executor_cpu_seconds", 10)),
    }
    if definitions is not None:
        request["defs"] = list(dict.fromkeys(definitions.values()))
    if results:
        request["results"] = results
    return request


# --- calls from the executor --------------------------------------------------------------------


#: The reply to a call from a run whose tool the step's code budget stopped: job code gets a
#: TimeoutError, and the executor ends the run at the end of that statement.
_OVER_BUDGET = ("budget", "over the step's step_code_budget")


class _Calls:
    """Serves one run's calls from the executor, with the job's functions (so futures are
    keyed and replayed exactly as in-process)."""

    def __init__(self, step: _Step, functions: JobFunctions, table: RefTable,
                 budget: CodeBudget | None) -> None:
        self.step = step
        self.table = table
        self.functions = functions
        self.budget = budget  # this step's: calls run in the reader's context, not the step's
        self.over_budget = ""  # a sync tool stopped at the step's code budget: its name
        self.over_budget_at = 0  # ... and the statement that called it

    def __call__(self, name: Any, args: Any, kwargs: Any, stmt: Any, calls: Any) -> Any:
        if self.over_budget:  # the run is ending: nothing more runs for it (a copy of the
            return _OVER_BUDGET  # budget is armed per call, so a retried tool had it anew)
        try:
            if (type(name) is not str or type(args) is not tuple or type(kwargs) is not dict
                    or type(stmt) is not int or type(calls) is not int
                    or not all(type(k) is str for k in kwargs)):
                raise ProtocolError("malformed call")
            handler = getattr(self, "do_" + name, None)
            if handler is None:
                raise ProtocolError(f"no job function {name!r}")
            args = self.table.from_child(args)
            kwargs = self.table.from_child(kwargs)
            self.functions.stmt = stmt
            self.functions.calls = calls - 1
            with store.transition():
                return handler(*args, **kwargs)
        except ControlSignal as signal:  # a job function ended the job (a delegate budget)
            ControlSignal.pending = None
            if isinstance(signal, JobExit):
                return ("exit", self.table.to_child(signal.status))
            return ("err", "RuntimeError", (str(signal),))
        except StepBudgetExceeded:  # the run ends with the budget's error (`_run`)
            if not self.over_budget:
                self.over_budget = str(args[0]) if name == "tool" and args else str(name)
                self.over_budget_at = stmt
            return _OVER_BUDGET
        except ProtocolError as exc:
            return ("err", "PermissionError", (f"refused by the scheduler: {exc}",))
        except BaseException as exc:  # a tool's SystemExit too: it escaped the executor's
            return encode_exception(exc)  # reader callback and stopped the worker

    def ok(self, value: Any) -> tuple[str, Any]:
        return ("ok", self.table.to_child(value))

    def do_delegate(self, agent: Any, **shared: Any) -> Any:
        return self.ok(self.functions.delegate(agent, **shared))

    def do_set_budget(self, child: Any, **limits: Any) -> Any:
        return self.ok(self.functions.set_budget(child, **limits))

    def do_sleep(self, seconds: Any) -> Any:
        return self.ok(self.functions.sleep(seconds))

    def do_sleep_until(self, when: Any) -> Any:
        return self.ok(self.functions.sleep_until(when))

    def do_wait_message(self) -> Any:
        return self.ok(self.functions.wait_message())

    def do_get_all(self, *futures: Any) -> Any:
        return self.ok(self.functions.get_all(*futures))

    def do_get_any(self, *futures: Any) -> Any:
        return self.ok(self.functions.get_any(*futures))

    def do_wait_for(self, condition: Any, *args: Any, poll: float = 1.0) -> Any:
        return self.ok(self.functions.wait_for(condition, *args, poll=poll))

    @staticmethod
    def _future(value: Any) -> Any:
        if not isinstance(value, Future):
            raise TypeError(f"expected a future, got {type(value).__name__}")
        return value

    def do_future_value(self, future: Any) -> Any:
        future = self._future(future)
        if future.is_ready():
            return self.ok(future.result)
        return ("suspend", self.table.to_child(future))

    def do_future_done(self, future: Any) -> Any:
        return self.ok(bool(self._future(future).is_ready()))

    def do_future_winner(self, future: Any) -> Any:
        return self.ok(int(self._future(future).winner))

    def do_wait_for_named(self, module: Any, qualname: Any, shown: Any, leads_back: Any,
                          *args: Any, poll: float = 1.0) -> Any:
        """wait_for() with a callable the executor named: the function of that name here,
        checked as in-process; refused with the same text when it is not one."""
        condition: Any = _NamedCallable(module, qualname)
        if leads_back is True and type(module) is str and type(qualname) is str:
            found = _resolve(module, qualname)
            if _names_of(found) == (module, qualname):
                condition = found
        problem = stored_callable_problem(condition)
        if problem is not None:
            raise SandboxViolation(f"wait_for() cannot use {str(shown)[:200]}: {problem}")
        return self.ok(self.functions.wait_for(condition, *args, poll=poll))

    def do_attr(self, obj: Any, name: Any) -> Any:
        """An attribute of a stored object, through the same allow-list as in-process
        (`memo_attribute`: refused names raise SandboxViolation, containers are copied)."""
        rule = memo_rule(obj)
        if rule is None or type(name) is not str:
            raise ProtocolError("attributes are read on stored objects only, by str name")
        if name[:1] == "_" or name in DENIED_ATTRIBUTES:
            raise SandboxViolation(f"attribute {name!r} is not accessible in restricted mode")
        return self.ok(memo_attribute(obj, name, rule))

    def do_repr(self, value: Any) -> Any:
        return self.ok(repr(value))

    def do_str(self, value: Any) -> Any:
        return self.ok(str(value))

    def do_tool(self, name: Any, args: Any, kwargs: Any) -> Any:
        info = self._tool(name)
        if info.is_async:
            raise TypeError(f"{name} is async: the executor awaits it through the step")
        if type(args) is not tuple or type(kwargs) is not dict:
            raise ProtocolError("malformed tool call")
        # as in process: its idempotency key and metrics (call_tool), and the step's code
        # budget, since it runs in the worker's thread while the executor waits. A copy of
        # what is left: the run's elapsed time, which includes the call, is charged after it
        budget = self.budget
        left = None if budget is None else CodeBudget(budget.limit, budget.left)
        return self.ok(call_guarded(self.step.uuid, left, self.functions.call_tool, info,
                                    args, kwargs))

    def _tool(self, name: Any) -> Any:
        info = find_tool(name) if type(name) is str else None
        if info is None or name not in self.step.defn.tool_names:
            raise NameError(f"name {name!r} is not defined")
        return info


class _NamedCallable:
    """What the executor named for wait_for() when nothing here answers to that name: the
    names alone, so `stored_callable_problem` says why (and never lets it through)."""

    def __init__(self, module: Any, qualname: Any) -> None:
        vars(self).update(__module__=module if type(module) is str else None,
                          __qualname__=qualname if type(qualname) is str else None)

    def __repr__(self) -> str:
        module, qualname = _names_of(self)
        return f"<{module}.{qualname}>"


def _resolve(module: str, qualname: str) -> Any:
    """The object `module.qualname` names among the modules already loaded (none imported)."""
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        if target is None:
            return None
        target = getattr(target, part, None)
    return target


def _names_of(func: Any) -> tuple[Any, Any]:
    return getattr(func, "__module__", None), getattr(func, "__qualname__", None)


# --- the phase ------------------------------------------------------------------------------------


async def run_code_isolated(step: _Step, policy: SandboxPolicy) -> bool:
    """Phase 4 in an executor; True when the step goes on to the model (as `run_code`)."""
    from statek.providers.deadline import bounded

    pool = pool_for(pool_config())
    table = table_for(step.uuid)
    results: dict[str, Any] = {}
    functions: JobFunctions | None = None
    job = step.job
    budget = step_budget.get()
    fresh = True
    while True:
        with store.transition():
            if not fresh and job.state == DONE:  # cancelled while a tool ran: no more code
                return False
            found = step.code_to_run()
            if found is None:
                return True
            source, key, warmup = found
            if functions is None or functions.code_key != key:
                results, functions = {}, JobFunctions(job, key)
            try:
                block = compile_block(source, policy)
            except SandboxViolation as exc:
                return step.code_failed(f"SandboxViolation: {exc}", warmup)
            start = int(job.stmt)
            request = _request(step, source, key, start, policy, table, results)
            request["fresh"] = fresh  # a new step: a new context (decimal) in the executor
            fresh = False
        calls = _Calls(step, functions, table, budget)
        outcome = await _run(pool, step, request, calls, budget, start)
        with store.transition():
            if job.state == DONE:  # cancelled while the executor ran: nothing to record
                return False
            kind, go_on, tool = _apply(step, block, outcome, warmup, start, table)
        if kind == AWAITING_TOOL:
            site, value = await _await_tool(step, tool, table, bounded)
            results[site] = value
            continue
        if not go_on:
            return False
        if kind == COMPLETED and warmup:
            continue
        return True


async def _run(pool: Any, step: _Step, request: dict[str, Any], calls: _Calls, budget: Any,
               start: int) -> dict[str, Any]:
    """One request to the job's executor; an executor lost (or a budget used up) becomes a
    failed outcome ("fatal" when it is the step's code budget)."""
    timeout = None
    if budget is not None and budget.limit > 0:
        if budget.left <= 0:
            return {"kind": "failed", "next": start, "upto": start, "fatal": True,
                    "error": budget_error(budget)}
        timeout = budget.left
    try:
        outcome: dict[str, Any] = await pool.run(step.uuid, request, calls, timeout)
    except ExecutorLost as exc:
        if calls.over_budget or (exc.over_time and timeout is not None):
            return _over_budget(budget, calls, start, f" ({exc})")
        return {"kind": "failed", "next": start + 1, "upto": start,
                "error": f"[statek] {exc}\n"}
    if calls.over_budget:  # whatever job code made of the error it was given
        return _over_budget(budget, calls, start, kept=outcome)
    if timeout is not None:
        budget.left -= float(outcome.get("elapsed", 0.0))
    return outcome


def _over_budget(budget: CodeBudget, calls: _Calls, start: int, how: str = "",
                 kept: Any = None) -> dict[str, Any]:
    """The run's outcome when it used the step's code budget up: the job ends (naming the
    sync tool the scheduler stopped, when it was one). `kept`, the executor's outcome of a
    run that went on after the tool was stopped: as in process, its console and the
    statements before the tool's survive (the executor stops at the end of that statement;
    one that does not is cut there all the same)."""
    budget.left = 0.0
    what = f"the tool {calls.over_budget} job code called" if calls.over_budget else "job code"
    outcome: dict[str, Any] = {"kind": "failed", "next": start, "upto": start, "fatal": True,
                               "error": budget_error(budget, what) + how}
    if type(kept) is dict:
        upto = kept.get("upto")
        if type(upto) is int:
            outcome["upto"] = max(start, min(upto, calls.over_budget_at))
        for key in ("console", "stored", "held", "absent"):
            if key in kept:
                outcome[key] = kept[key]
    return outcome


@worker_state.on_drop
def _forget_in_executor(job_uuid: str) -> None:
    """A finished job's namespace in its executor process can go too."""
    pool = current_pool()
    if pool is not None:
        pool.forget(job_uuid)


async def _await_tool(step: _Step, tool: Any, table: RefTable, bounded: Any) -> tuple[str, Any]:
    site, name, args, kwargs = tool
    waiting.about_to_wait()  # the statements before the tool's are recorded
    try:
        info = find_tool(name)
        if info is None or name not in step.defn.tool_names:
            raise NameError(f"name {name!r} is not defined")
        # as in process: the call's idempotency key and its metrics
        with tool_call_key(f"{step.uuid}:{site}"), hooks.observed_tool(name):
            value = await bounded(info.func(*table.from_child(args),
                                            **table.from_child(kwargs)),
                                  step.limits.step_timeout)
        return site, ("ok", table.to_child(value))
    except BaseException as exc:  # the tool's, BaseException included, as in process
        from statek.execution.step import reraise_if_cancelled

        reraise_if_cancelled(exc)  # not the step's own cancel
        return site, encode_exception(exc)


def _apply(step: _Step, block: CompiledBlock, outcome: Any, warmup: bool, start: int,
           table: RefTable) -> tuple[BlockEnd, bool, Any]:
    """Record an executor's outcome; (kind, go on, tool call awaited)."""
    job = step.job
    try:
        kind, upto, next_stmt = _checked(outcome, block, start)
    except ProtocolError as exc:
        kind, upto, next_stmt = FAILED, start, start + 1
        outcome = {"error": f"[statek] the isolated executor sent a bad result: {exc}\n"}
    for text in outcome.get("console") or ():
        if type(text) is str:
            job.write_console(text)
    _persist(step, block.statements[start:upto], outcome, table)
    tool = None
    result = Outcome(kind, next_stmt)
    try:
        if kind == EXITED:
            result.exit_status = _exit_status(job, outcome, table)
        elif kind is WAITING_ON_FUTURE:
            result.future = table.from_child(outcome.get("future"))
            if not isinstance(result.future, Future):
                raise ProtocolError("a suspension names no future")
        elif kind == AWAITING_TOOL:
            tool = outcome.get("tool")
            if (type(tool) is not tuple or len(tool) != 4 or type(tool[0]) is not str
                    or type(tool[1]) is not str):
                raise ProtocolError("malformed tool call")
        elif kind == FAILED:
            error = outcome.get("error")
            result.error = error if type(error) is str else "[statek] job code failed\n"
            result.fatal = outcome.get("fatal") is True and "elapsed" not in outcome
    except ProtocolError as exc:
        result = Outcome(FAILED, start + 1,
                         error=f"[statek] the isolated executor sent a bad result: {exc}\n")
        kind = FAILED
    _trim_sites(job, kind, next_stmt)
    return kind, step.apply(result, warmup, int(job.stmt)), tool


def _checked(outcome: Any, block: CompiledBlock, start: int) -> tuple[BlockEnd, int, int]:
    if type(outcome) is not dict:
        raise ProtocolError("an outcome is a dict")
    kind = _KINDS.get(outcome.get("kind"))  # type: ignore[arg-type]
    upto, next_stmt = outcome.get("upto"), outcome.get("next")
    count = len(block.statements)
    if (kind is None or type(upto) is not int or type(next_stmt) is not int
            or not start <= upto <= count or not 0 <= next_stmt <= count + 1):
        raise ProtocolError("malformed outcome")
    return kind, upto, next_stmt


def _exit_status(job: Any, outcome: dict[str, Any], table: RefTable) -> Any:
    shown = outcome.get("exit_repr")
    if shown is not None:
        if type(shown) is not tuple or len(shown) != 2 or not all(type(s) is str for s in shown):
            raise ProtocolError("malformed exit status")
        job.write_console(f"[statek] exit status of type {shown[0]} cannot be stored; its "
                          "repr() is kept instead\n")
        return shown[1]
    return table.from_child(outcome.get("exit"))


def _persist(step: _Step, completed: Any, outcome: dict[str, Any], table: RefTable) -> None:
    """Bind what the completed statements left (as `JobNamespace.persist` per statement):
    only names those statements bind or delete, and persisted names changed in place."""
    job = step.job
    stored_locals = StoredLocals(job)
    allowed: set[str] = set()
    for stmt in completed:
        allowed.update(stmt.assigned)
        allowed.update(stmt.deleted)
    values: dict[str, Any] = {}
    sent = outcome.get("stored")
    for name, value in (sent.items() if type(sent) is dict else ()):
        if type(name) is not str or (name not in allowed and name not in stored_locals):
            continue
        try:
            decoded = table.from_child(value)
        except ProtocolError:
            decoded = _MISSING
        if decoded is not _MISSING and can_persist(decoded):
            values[name] = decoded
        else:
            job.write_console(f"[statek] {name} could not be stored; kept in the executor\n")
    gone = [name for key in ("held", "absent") for name in (outcome.get(key) or ())
            if type(name) is str and name in allowed and name not in values]
    deleted = tuple(name for name in gone if name in stored_locals)
    if values or deleted:
        _bind(job, stored_locals, values, deleted)
    _definitions(job, completed)


def _bind(job: Any, stored_locals: StoredLocals, values: dict[str, Any],
          deleted: tuple[str, ...]) -> None:
    try:
        stored_locals.bind(values, deleted)
    except (TypeError, AttributeError, OverflowError, ValueError):
        stored_locals = StoredLocals(job)  # a nested value dbzero refused: one by one
        stored_locals.bind({}, deleted)
        for name, value in values.items():
            try:
                stored_locals.bind({name: value})
            except (TypeError, AttributeError, OverflowError, ValueError):
                job.write_console(f"[statek] {name} could not be stored\n")


def _definitions(job: Any, completed: Any) -> None:
    definitions = job.definitions
    for stmt in completed:
        names = (*stmt.assigned, *stmt.deleted)
        if stmt.assigned and stmt.source.startswith(_DEFINITION_STARTS):
            job.remember_definition(stmt.assigned, stmt.source)
            definitions = job.definitions
        elif definitions is not None:
            for name in names:
                if name in definitions:
                    del definitions[name]


def _trim_sites(job: Any, kind: BlockEnd, next_stmt: int) -> None:
    """Keep the futures of the statement that will run again (suspended, awaiting a tool);
    the completed statements' are no longer needed (in-process clears them one by one)."""
    sites = job.sites
    if sites is None:
        return
    if kind in (WAITING_ON_FUTURE, AWAITING_TOOL):
        marker = f":{next_stmt}:"
        stale = [site for site in sites.keys() if marker not in site]  # noqa: SIM118
        if len(stale) < len(sites):
            for site in stale:
                del sites[site]
            return
    job.sites = None


_MISSING: Any = object()

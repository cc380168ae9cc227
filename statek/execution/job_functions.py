"""The functions every job's code can call: exit, futures, tools.

Replay safety: a statement that suspends runs again from its start when the job resumes.
Every future-making call is keyed by (code, statement, call order within the statement) and a
re-run returns the future the first run made, so resuming never starts a second child job or
a second timer. The table lives on the job (`job.sites`) and is cleared when the statement
completes.
"""

from __future__ import annotations

import contextlib
import datetime
import random
import sys
import time
from collections.abc import Callable
from types import FunctionType
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import signals, store, worker_state
from statek._views import FrozenMapping
from statek.errors import SandboxViolation
from statek.execution.control_flow import AwaitTool, JobExit
from statek.execution.harness import GUARD
from statek.models import containers
from statek.models.future import ALL, ANY, CONDITION, JOB, MESSAGE, TIMER, ControlSignal, Future
from statek.observability import hooks
from statek.sandbox import JOB_STATE_KEY, plain_copy, release_decimal_context, trust_host_code
from statek.sandbox.policy import JOB_MODULE_NAME, MODULE_DENIED_ATTRIBUTES
from statek.tools import ToolInfo, find_tool, tool_call_key

if TYPE_CHECKING:
    from statek.models.job import Job

#: job uuid -> its `random` generator: `random_generators` on the worker's state owner
GENERATORS_KEPT = 4096


class DelegateBudgetExceeded(JobExit):
    """A job started more child jobs than its budget allows: it ends, with `job.error` naming
    the budget. A control signal, so job code cannot catch it and go on delegating."""

    def __init__(self) -> None:
        super().__init__(None)
        ControlSignal.pending = self  # wins over any signal job code swallowed before


class JobFunctions:
    """Per-execution state behind the injected functions of one job."""

    #: the running Job; None while a kept namespace waits for its job's next step
    job: Any
    #: writes the console line of a refusal job code met (set by the job's namespace)
    on_violation: Callable[[SandboxViolation], None]

    def __init__(self, job: Job, code_key: str) -> None:
        self.tool_results: dict[str, Any] = {}
        self.reset(job, code_key)

    def reset(self, job: Job, code_key: str) -> None:
        """Start an execution of the code `code_key` (a kept namespace's functions are reset
        rather than made again: job code holds on to them through its builtins)."""
        self.job = job
        self.code_key = code_key
        self.stmt = 0
        self.calls = 0
        self.printed = 0  # console lines the running statement printed
        self.delegated = 0  # child jobs started by this run (max_delegates_per_step)
        self._tool_stmt = -1  # the statement `_tool_calls` counts sync tool calls of
        self._tool_calls = 0
        self.tool_results.clear()
        self._has_sites: bool | None = None  # whether job.sites is set (None: not read yet)
        release_decimal_context(job)

    def start_statement(self, index: int) -> None:
        self.stmt = index
        self.calls = 0
        self.printed = 0

    def write(self, text: str) -> None:
        """Job code's print sink: the console, counting the statement's lines."""
        self.job.write_console(text)
        self.printed += 1

    def violation(self, exc: SandboxViolation) -> None:
        """A refusal job code met (its `on_violation` writes one console line: counted)."""
        self.on_violation(exc)
        self.printed += 1

    def drop_printed(self) -> None:
        """The statement stopped to wait and will run again from its start: the lines it
        wrote so far (prints, refusal notes) go, or the console would show them once per
        run (it writes them again)."""
        count = self.printed
        self.printed = 0
        lines = self.job.console_lines if count else None
        if lines is not None:  # `del` by index: List.pop leaks in dbzero 0.7.0 (strings don't,
            for _ in range(min(count, len(lines))):  # but one way for every list is simpler)
                del lines[len(lines) - 1]

    def statement_done(self) -> None:
        if self._has_sites is None:
            self._has_sites = self.job.sites is not None  # read once per execution
        if self._has_sites:
            self.job.sites = None
            self._has_sites = False
        self.tool_results.clear()

    def _sync_tool_key(self) -> str:
        """`idempotency_key()` of a sync tool call: the job, the code, the statement and the
        call's rank among the statement's sync tool calls (a count of its own, so the sites
        of futures and async tools stay what they were)."""
        if self._tool_stmt != self.stmt:
            self._tool_stmt, self._tool_calls = self.stmt, 0
        self._tool_calls += 1
        return f"{db0.uuid(self.job)}:{self.code_key}:{self.stmt}:t{self._tool_calls}"

    def _site(self) -> str:
        self.calls += 1
        return f"{self.code_key}:{self.stmt}:{self.calls}"

    def _future(self, make: Callable[[], Future]) -> Future:
        site = self._site()
        sites = self.job.sites
        if sites is not None:
            found: Future | None = sites.get(site)
            if found is not None:
                return found
        future = make()
        self._has_sites = True
        if sites is None:
            self.job.sites = {site: future}
        else:
            sites[site] = future
        return future

    # ------------------------------------------------------------ injected names
    def exit(self, status: Any = None) -> None:
        raise JobExit(status)

    def delegate(self, agent: object, **shared_vars: Any) -> Future:
        """Start a child job of `agent`; its future's value is the child's exit status.

        The child gets copies of `shared_vars` (persisted containers included): neither job
        can change the other's variables through them afterwards."""
        from statek.models.agent import Agent
        from statek.models.submit import create_job, jobdef_for

        if not isinstance(agent, Agent):
            raise TypeError(f"delegate() needs an Agent, not {type(agent).__name__}")
        values = {name: plain_copy(value) for name, value in shared_vars.items()}

        def make() -> Future:
            root = self._charge_delegation()
            # no step-budget exception inside the creation (it would leave half a child):
            # one due now is raised before the job's next statement instead
            guard, inside = GUARD, GUARD.active
            guard.active = False
            try:
                child = create_job(jobdef_for(agent, {}), values, self.job.locale, self.job)
                if hooks.ON:  # the child's step spans link to this delegation (statek[otel])
                    hooks.delegated(child)
                root.tree_delegated = int(root.tree_delegated) + 1
                budget = self.job.budget
                if budget is not None:  # the child shares what is left of the parent's budget
                    child.budget = budget
                return Future(JOB, self.job, target=child)
            finally:
                guard.active = inside

        return self._future(make)

    def set_budget(self, child: Any, **limits: Any) -> dict[str, Any]:
        """Give a delegated child (the future `delegate()` returned) a budget of its own:
        tokens, cost, steps, seconds (absolute; 0 is no limit) and policy. Its spending still
        counts against this job's budgets; a child held on its budget resumes if now within.
        Setting the same limits again (a replayed statement) changes nothing."""
        from statek.admission.budgets import set_child_budget

        return set_child_budget(self.job, child, limits)

    def _charge_delegation(self) -> Job:
        """Check both delegate budgets before a child is made; returns the tree's root job."""
        cfg = store.settings()
        limit = int(cfg.max_delegates_per_step)
        if self.delegated >= limit:
            self._over_budget(f"this step already started {self.delegated} child jobs "
                              f"(max_delegates_per_step={limit})")
        tree_limit = int(cfg.max_delegates_per_tree)
        root: Job = self.job.tree_root
        if root is None:  # a root job
            root = self.job
        hops = 0  # a job delegated before jobs knew their root: its parents are walked
        while root.parent is not None and hops <= tree_limit:
            root, hops = root.parent, hops + 1
        used = int(root.tree_delegated)
        if used >= tree_limit:
            self._over_budget(f"its job tree already started {used} child jobs "
                              f"(max_delegates_per_tree={tree_limit})")
        self.delegated += 1
        return root

    def _over_budget(self, why: str) -> None:
        message = f"delegate budget exceeded: {why}"
        self.job.write_console(f"[statek] {message}\n")
        self.job.error = message
        raise DelegateBudgetExceeded()

    def sleep(self, seconds: float) -> Future:
        """A timer future ready `seconds` from the first time this call ran."""
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"sleep() needs a non-negative number of seconds, not {seconds!r}")
        return self._timer(lambda: time.time() + float(seconds))

    def sleep_until(self, when: float | datetime.datetime) -> Future:
        """A timer future ready at `when` (epoch seconds or an aware/naive-UTC datetime)."""
        if isinstance(when, datetime.datetime):
            stamp = (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()
        elif isinstance(when, int | float):
            stamp = float(when)
        else:
            raise TypeError(f"sleep_until() needs epoch seconds or a datetime, not {when!r}")
        return self._timer(lambda: stamp)

    def _timer(self, deadline: Callable[[], float]) -> Future:
        def make() -> Future:
            due = deadline()
            signals.timer_set(db0.uuid(self.job), due)
            return Future(TIMER, self.job, deadline=due)

        return self._future(make)

    def wait_message(self) -> Future:
        """A future whose value is the next message pushed to this job."""
        return self._future(lambda: Future(MESSAGE, self.job))

    def get_all(self, *futures: Any) -> Future:
        """Ready when every future is; value is the list of their values."""
        parts = _flatten(futures, "get_all")
        return self._future(lambda: Future(ALL, self.job, parts=parts))

    def get_any(self, *futures: Any) -> Future:
        """Ready when one future is; value is that future's value (`.winner` its index)."""
        parts = _flatten(futures, "get_any")
        return self._future(lambda: Future(ANY, self.job, parts=parts))

    def wait_for(self, condition: Callable[..., bool], *args: Any,
                 poll: float = 1.0) -> Future:
        """Ready once `condition(*args)` is true; re-checked every `poll` seconds.

        `condition` must be a module-level function (dbzero stores it by reference, and the
        scheduler imports and calls it by that name): in restricted mode, one of an allowed
        module whose module and name lead back to it."""
        problem = stored_callable_problem(condition)
        if problem is not None:
            raise SandboxViolation(f"wait_for() cannot use {condition!r}: {problem}")
        return self._future(
            lambda: Future(CONDITION, self.job, condition=condition, args=args,
                           poll_interval=max(float(poll), 0.01))
        )

    def call_tool(self, info: ToolInfo, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not info.is_async:
            with tool_call_key(self._sync_tool_key()):
                if hooks.ON:  # counted like the async and the native calls
                    with hooks.tool_call(info.name):
                        return info.func(*args, **kwargs)
                return info.func(*args, **kwargs)
        if ControlSignal.pending is not None:  # the statement is stopping already
            raise ControlSignal.pending
        site = self._site()
        if site in self.tool_results:
            result = self.tool_results[site]
            if isinstance(result, BaseException):
                raise result
            return result
        raise AwaitTool(site, info.func(*args, **kwargs))

    # ------------------------------------------------------------ per-job module state
    def job_random(self) -> random.Random:
        """This job's generator behind job code's `random.*` functions (kept per job)."""
        key = db0.uuid(self.job)
        generators = worker_state.current().random_generators
        generator = generators.get(key)
        if generator is None:
            generator = generators[key] = random.Random()
            if len(generators) > GENERATORS_KEPT:
                generators.popitem(last=False)
        else:
            generators.move_to_end(key)
        return generator

    def owner(self) -> Any:
        """Who a decimal context set up by job code belongs to (the running job)."""
        return self.job

    def builtins(self, tool_names: tuple[str, ...], params: Params) -> dict[str, Any]:
        names: dict[str, Any] = {
            JOB_STATE_KEY: self,
            "exit": self.exit,
            "delegate": self.delegate,
            "set_budget": self.set_budget,
            "sleep": self.sleep,
            "sleep_until": self.sleep_until,
            "wait_message": self.wait_message,
            "get_all": self.get_all,
            "get_any": self.get_any,
            "wait_for": self.wait_for,
            "params": params,
        }
        for name in tool_names:
            info = find_tool(name)
            if info is not None:
                names[name] = _ToolCaller(self, info)
        return names


# Host code job code calls: what it does (create jobs, log, run a tool) is not job code's.
for _method in (JobFunctions.delegate, JobFunctions.set_budget, JobFunctions.sleep,
                JobFunctions.sleep_until, JobFunctions.wait_message, JobFunctions.get_all,
                JobFunctions.get_any, JobFunctions.wait_for, JobFunctions.call_tool):
    trust_host_code(_method)


def stored_callable_problem(func: Any) -> str | None:
    """Why `func` cannot be stored by module and name for the scheduler to call, or None."""
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return "it has no module and name to be stored by"
    if module_name == JOB_MODULE_NAME:
        return "functions the job defines cannot be stored; use a function of an allowed module"
    if store.restricted_mode():
        allowed = set(store.settings().allowed_imports) | {"builtins"}
        name = qualname.rpartition(".")[2]
        if (module_name not in allowed or "_" in qualname[:1] or "._" in qualname
                or name in MODULE_DENIED_ATTRIBUTES.get(module_name, {})):
            return f"{module_name}.{qualname} is not a public function of an allowed module"
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not func:
        return f"its module and name ({module_name}.{qualname}) do not lead back to it"
    if not isinstance(func, FunctionType):  # dbzero raised "Unsupported attribute type"
        return (f"{module_name}.{qualname} is not a function written in Python (a "
                f"{type(func).__name__}); dbzero stores only those by reference")
    return None


class _ToolCaller:
    """What job code sees for a tool: calling it runs the tool (async ones via the step)."""

    __slots__ = ("_functions", "_info")

    def __init__(self, functions: JobFunctions, info: ToolInfo) -> None:
        self._functions = functions
        self._info = info

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._functions.call_tool(self._info, args, kwargs)

    def __repr__(self) -> str:
        return f"<tool {self._info.name}{self._info.signature}>"


class Params(FrozenMapping):
    """What job code sees as `params`: a read-only copy of the job definition's parameters,
    which every job of that definition shares."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self._data)


_NO_PARAMS = Params({})


def read_only_params(params: Any) -> Params:
    """What job code sees as `params` for a definition's stored parameters."""
    view = _read_only(params) if params else _NO_PARAMS
    return view if isinstance(view, Params) else Params({})


def _read_only(value: Any) -> Any:
    """A plain copy of stored params where no container can be changed."""
    kind = type(value)
    if kind.__module__ == "builtins":
        stored = containers.kind_of_type(kind)
        if kind is dict or stored == "Dict":
            return Params({key: _read_only(item) for key, item in value.items()})
        if kind is list or kind is tuple or stored == "List" or stored == "Tuple":
            return tuple(_read_only(item) for item in value)
        if kind is set or stored == "Set":
            return frozenset(_read_only(item) for item in value)
        if stored == "ByteArray":
            return containers.plain_copy(value)  # bytes: read-only
    return value


def _flatten(futures: tuple[Any, ...], name: str) -> list[Any]:
    if len(futures) == 1 and not isinstance(futures[0], Future):
        with contextlib.suppress(TypeError):
            futures = tuple(futures[0])
    if not futures:  # it failed later, as "'NoneType' object is not iterable"
        raise TypeError(f"{name}() needs at least one future (futures, or one list of them)")
    for f in futures:
        if not isinstance(f, Future):
            raise TypeError(f"{name}() expected futures, got {type(f).__name__}")
    return list(futures)

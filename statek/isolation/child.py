"""An executor process: runs job code for the scheduler process, never touches storage.

    python -m statek.isolation.child '<json limits>'

It reads frames from stdin and writes frames to stdout (see `protocol`). For each
("run", id, request) it runs statements of one block under the same RestrictedPython policy
as in-process mode and answers ("done", id, outcome). Job functions that need storage
(delegate, sleep, futures, sync tools) are calls back to the scheduler: ("call", id, name,
args, kwargs, stmt, calls), answered by ("reply", id, result). Each job's namespace is kept
here between its steps (functions and classes it defined live here), rebuilt from what the
scheduler sends: the persisted locals and, when this process has no namespace for the job,
the source of its definitions.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import pickle
import sys
from collections import OrderedDict, deque
from typing import Any, ClassVar

from statek.isolation import limits
from statek.isolation.protocol import (
    HEADER,
    Opaque,
    ProtocolError,
    Ref,
    allowed_classes,
    decode_exception,
    dumps,
    loads_untrusted,
)
from statek.models import exit_preview
from statek.models.value_checks import check_console_write

_MISSING: Any = object()
#: Jobs whose namespace is kept; the least recently run is dropped first.
MAX_NAMESPACES = 4096
_SCALARS = (str, int, float, bool, type(None))


# --- the channel ---------------------------------------------------------------------------------


class Channel:
    """Blocking frames over two file descriptors; run requests that arrive while a call
    waits for its reply are queued."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.queued: deque[Any] = deque()
        self.classes = allowed_classes()
        self.classes[("statek.isolation.protocol", "Ref")] = _make_ref
        self.classes[("statek.isolation.protocol", "Opaque")] = _make_opaque

    def send(self, message: Any) -> None:
        data = memoryview(dumps(message))
        while data:
            written = os.write(self.wfd, data)
            data = data[written:]

    def _read_exact(self, size: int) -> bytes:
        parts: list[bytes] = []
        while size:
            chunk = os.read(self.rfd, min(size, 1 << 20))
            if not chunk:
                raise EOFError
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def receive(self) -> Any:
        (length,) = HEADER.unpack(self._read_exact(4))
        return loads_untrusted(self._read_exact(length), self.classes)

    def next_request(self) -> Any:
        return self.queued.popleft() if self.queued else self.receive()

    def call(self, run_id: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             stmt: int, calls: int) -> Any:
        self.send(("call", run_id, name, args, kwargs, stmt, calls))
        while True:
            message = self.receive()
            if message[0] == "reply" and message[1] == run_id:
                return message[2]
            self.queued.append(message)


_channel: Channel | None = None


# --- stored objects as seen by job code ----------------------------------------------------------


class RemoteObject:
    """A stored object the scheduler handed over: job code may pass it back (to delegate,
    get_all...) and print it; its contents stay in the scheduler process. Job code reads it
    as in-process: the sandbox's attribute hook applies the allow-list of the host class
    (`MEMO_RULES`, registered per handle class) and asks for an allowed attribute here, which
    fetches it from the scheduler (it checks the allow-list again)."""

    __slots__ = ("_ref",)

    def __init__(self, ref: Ref) -> None:
        self._ref = ref

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return self._ref.__reduce__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteObject) and other._ref == self._ref

    def __hash__(self) -> int:
        return hash(self._ref)

    def __repr__(self) -> str:
        return str(_Run.current().call("repr", (self,), {}))

    def __getattr__(self, name: str) -> Any:
        if name[:1] == "_":  # protocols Python looks up (copy, pickle...): none here
            raise AttributeError(name)
        return _Run.current().call("attr", (self, name), {})


class RemoteFuture(RemoteObject):
    """A future: reading `.value` asks the scheduler, and suspends the job if not ready."""

    __slots__ = ()

    @property
    def value(self) -> Any:
        return _Run.current().call("future_value", (self,), {})

    @property
    def done(self) -> bool:
        return bool(_Run.current().call("future_done", (self,), {}))

    @property
    def winner(self) -> int:
        return int(_Run.current().call("future_winner", (self,), {}))


#: The scheduler's name of a future's class (a Ref's kind is "module.qualname").
FUTURE_CLASS = "statek.models.future.Future"
#: Handle classes by the host class they stand for; past the cap, new kinds share one.
_handles: dict[str, type[RemoteObject]] = {}
_MAX_HANDLE_CLASSES = 1000


def handle_class(kind: str) -> type[RemoteObject]:
    """The handle class for a stored object of host class `kind`: named after it (refusals
    read as in-process: "attribute 'owner' of Future objects...") and registered with the
    sandbox with the host class's allow-list."""
    found = _handles.get(kind)
    if found is not None:
        return found
    from statek.sandbox.isolation import MEMO_ALLOWED, MEMO_RULES

    if len(_handles) >= _MAX_HANDLE_CLASSES:
        kind = "builtins.object"
        if kind in _handles:
            return _handles[kind]
    short = kind.rpartition(".")[2] or "object"
    base = RemoteFuture if kind == FUTURE_CLASS else RemoteObject
    cls = type(short, (base,), {"__slots__": (), "__qualname__": short})
    rule: frozenset[str] | bool = MEMO_ALLOWED.get(kind, True)
    if rule is True and kind.partition(".")[0] == "statek":
        rule = frozenset()  # statek's other classes expose nothing, as in-process
    MEMO_RULES[cls] = rule
    _handles[kind] = cls
    return cls


def _make_ref(token: str, kind: str) -> RemoteObject:
    ref = Ref(token, kind)
    return handle_class(kind)(ref)


class _Opaque(RemoteObject):
    """A host value job code may hold and hand back; printing it shows the host's text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return self._text("repr")

    def __str__(self) -> str:
        return self._text("str")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def _text(self, how: str) -> str:
        if _Run._current is None:
            return f"<host {self._ref.kind}>"
        return str(_Run.current().call(how, (self,), {}))


def _make_opaque(token: str, kind: str) -> _Opaque:
    return _Opaque(Opaque(token, kind))


# --- control signals -----------------------------------------------------------------------------


class Signal(BaseException):
    """Stops the statement (as in-process: the first one raised wins, even if swallowed)."""

    pending: ClassVar[Signal | None] = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if Signal.pending is None:
            Signal.pending = self


class Exit(Signal):
    def __init__(self, status: Any) -> None:
        super().__init__("job exited")
        self.status = status


class Suspend(Signal):
    def __init__(self, future: Any) -> None:
        super().__init__("job suspended")
        self.future = future


class AwaitTool(Signal):
    def __init__(self, site: str, name: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        super().__init__("awaiting a tool")
        self.call = (site, name, args, kwargs)


# --- one job's namespace and the functions its code is given -------------------------------------


class _ToolCaller:
    __slots__ = ("_functions", "_is_async", "_name", "_signature")

    def __init__(self, functions: _Functions, name: str, is_async: bool, signature: str) -> None:
        self._functions = functions
        self._name = name
        self._is_async = is_async
        self._signature = signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._functions.tool(self._name, self._is_async, args, kwargs)

    def __repr__(self) -> str:
        return f"<tool {self._name}{self._signature}>"


class _Functions:
    """exit, delegate, sleep... for one job; the storage side is a call to the scheduler."""

    def __init__(self) -> None:
        self.run: _Run | None = None
        self.stmt = 0
        self.calls = 0

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              future: bool = True) -> Any:
        _check_plain(name, args, kwargs)
        if future:
            self.calls += 1
        assert self.run is not None
        return self.run.call(name, args, kwargs)

    def exit(self, status: Any = None) -> None:
        raise Exit(status)

    def delegate(self, agent: Any, **shared_vars: Any) -> Any:
        return self._call("delegate", (agent,), shared_vars)

    def set_budget(self, child: Any, **limits: Any) -> Any:
        return self._call("set_budget", (child,), limits, future=False)

    def sleep(self, seconds: float) -> Any:
        return self._call("sleep", (seconds,), {})

    def sleep_until(self, when: Any) -> Any:
        return self._call("sleep_until", (when,), {})

    def wait_message(self) -> Any:
        return self._call("wait_message", (), {})

    def get_all(self, *futures: Any) -> Any:
        return self._call("get_all", tuple(_flatten(futures, "get_all")), {})

    def get_any(self, *futures: Any) -> Any:
        return self._call("get_any", tuple(_flatten(futures, "get_any")), {})

    def wait_for(self, condition: Any, *args: Any, poll: float = 1.0) -> Any:
        """A host function given to the job goes back as itself; any other callable by its
        module and name, which the scheduler resolves in its own modules and checks as
        in-process (`stored_callable_problem`): this process's objects never cross."""
        if isinstance(condition, _Opaque):
            return self._call("wait_for", (condition, *args), {"poll": poll})
        module, qualname = _names_of(condition)
        shown = _safe_repr(condition)[:200]
        return self._call("wait_for_named",
                          (module, qualname, shown, _leads_back(condition, module, qualname),
                           *args), {"poll": poll})

    def tool(self, name: str, is_async: bool, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        if not is_async:
            return self._call("tool", (name, args, kwargs), {}, future=False)
        if Signal.pending is not None:  # the statement is stopping already
            raise Signal.pending
        assert self.run is not None
        self.calls += 1
        site = f"{self.run.key}:{self.stmt}:{self.calls}"
        found = self.run.tool_results.get(site, _MISSING)
        if found is _MISSING:
            _check_plain(name, args, kwargs)
            raise AwaitTool(site, name, args, kwargs)
        return _unwrap(found)

    def builtins(self, tools: dict[str, tuple[bool, str]], params: Any) -> dict[str, Any]:
        names: dict[str, Any] = {
            "exit": self.exit, "delegate": self.delegate, "set_budget": self.set_budget,
            "sleep": self.sleep,
            "sleep_until": self.sleep_until, "wait_message": self.wait_message,
            "get_all": self.get_all, "get_any": self.get_any, "wait_for": self.wait_for,
            "params": params,
        }
        for name, (is_async, signature) in tools.items():
            names[name] = _ToolCaller(self, name, bool(is_async), str(signature))
        return names


def _names_of(func: Any) -> tuple[str | None, str | None]:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    return (module if type(module) is str else None,
            qualname if type(qualname) is str else None)


def _leads_back(func: Any, module: str | None, qualname: str | None) -> bool:
    """Whether `func` is what its module and name lead to here (a job's private object,
    e.g. a bound method of its own random generator, is not)."""
    if module is None or qualname is None:
        return False
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target is func


def _flatten(futures: tuple[Any, ...], name: str) -> list[Any]:
    """As the scheduler's (`job_functions._flatten`), over this process's futures; an empty
    call goes on to the scheduler, which refuses it with the same words as in process."""
    if len(futures) == 1 and not isinstance(futures[0], RemoteFuture):
        with contextlib.suppress(TypeError):
            futures = tuple(futures[0])
    for f in futures:
        if not isinstance(f, RemoteFuture):
            raise TypeError(f"{name}() expected futures, got {type(f).__name__}")
    return list(futures)


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` can cross to the scheduler: plain data and handed-over objects in
    built-in containers, at most 64 levels deep."""
    kind = type(value)
    if kind in _SCALARS or kind is bytes or kind in _VALUE_TYPES or isinstance(value, RemoteObject):
        return True
    if depth > 64:
        return False
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return all(_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _check_plain(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if not _plain(value):
            raise TypeError(f"{name}() got a {type(value).__name__}: only plain data "
                            "(numbers, strings, containers of them) and objects the job was "
                            "given cross to the scheduler from the isolated executor")


def _unwrap(result: Any) -> Any:
    """A reply: ("ok", value), ("err", class name, args) or ("suspend", future)."""
    kind = result[0]
    if kind == "ok":
        return result[1]
    if kind == "suspend":
        raise Suspend(result[1])
    if kind == "exit":  # the scheduler ended the job (a delegate budget): wins over others
        Signal.pending = None
        raise Exit(result[1])
    if kind == "budget":  # a sync tool ran the step's code budget out (`_Run.call`)
        raise TimeoutError(result[1])
    raise decode_exception(result[1], result[2])


class _JobState:
    __slots__ = ("context", "functions", "globals", "policy", "transient")

    def __init__(self, policy: Any, g: dict[str, Any], functions: _Functions) -> None:
        self.policy = policy
        self.globals = g
        self.functions = functions
        self.transient: dict[str, Any] = {}
        self.context: contextvars.Context | None = None  # the running step's


_jobs: OrderedDict[str, _JobState] = OrderedDict()
_policies: dict[tuple[Any, ...], Any] = {}


def _policy(spec: tuple[Any, ...]) -> Any:
    from statek.sandbox import SandboxPolicy

    policy = _policies.get(spec)
    if policy is None:
        restricted, imports, chars, nodes = spec
        policy = _policies[spec] = SandboxPolicy(restricted=bool(restricted),
                                                 allowed_imports=frozenset(imports),
                                                 max_source_chars=int(chars),
                                                 max_ast_nodes=int(nodes))
    return policy


def storable(value: Any, depth: int = 0) -> bool:
    """Whether the scheduler can store `value` (what `interpreter.can_persist` says of the
    same value there): plain data, and the stored objects it handed over."""
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if kind is int:
        return bool(-(2**63) <= value < 2**63)
    if kind is float or kind is bool or value is None or kind is bytes:
        return True
    if kind in _VALUE_TYPES or isinstance(value, RemoteObject):
        return True
    if depth > 64:
        return False
    if kind is list or kind is tuple or kind is set:
        return all(storable(item, depth + 1) for item in value)
    if kind is dict:
        return all(storable(k, depth + 1) and storable(v, depth + 1) for k, v in value.items())
    return False


def _value_types() -> tuple[type, ...]:
    import datetime
    import decimal

    return (datetime.date, datetime.datetime, decimal.Decimal)


_VALUE_TYPES = frozenset(_value_types())


# --- a run -------------------------------------------------------------------------------------


class _Run:
    """One ("run", id, request): statements start... of one block of one job."""

    _current: ClassVar[_Run | None] = None

    def __init__(self, run_id: int, request: dict[str, Any]) -> None:
        self.id = run_id
        self.job: str = request["job"]
        self.key: str = request["key"]
        self.tool_results: dict[str, Any] = request.get("results") or {}
        self.console: list[str] = []
        self.functions: _Functions | None = None
        self.over_budget = False  # the scheduler stopped a tool at the step's code budget

    @classmethod
    def current(cls) -> _Run:
        if cls._current is None:
            raise RuntimeError("stored objects can only be used while the job runs")
        return cls._current

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert _channel is not None and self.functions is not None
        result = _channel.call(self.id, name, args, kwargs, self.functions.stmt,
                               self.functions.calls)
        if result[0] == "budget":  # job code gets the error; its statement is the run's last
            self.over_budget = True
        return _unwrap(result)

    def write(self, text: str) -> None:
        """One print or echo: over the console's limit it fails in the job's statement, as
        in process (the scheduler would refuse the whole run's console otherwise)."""
        check_console_write(text)
        self.console.append(text)

    def violation(self, exc: BaseException) -> None:
        self.console.append(f"[statek] refused: {exc}\n")


def _namespace(run: _Run, request: dict[str, Any], policy: Any) -> _JobState:
    """The job's kept namespace, or a fresh one (with its definitions replayed)."""
    from statek.execution.job_functions import Params
    from statek.sandbox import exec_globals, rebind_exec_globals

    state = _jobs.pop(run.job, None)
    if state is not None and state.policy is policy:
        rebind_exec_globals(state.globals, policy, print_sink=run.write,
                            on_violation=run.violation)
    else:
        functions = _Functions()
        extra = functions.builtins(request.get("tools") or {},
                                   Params(_frozen(request.get("params") or {})))
        g = exec_globals(policy, print_sink=run.write, extra_builtins=extra,
                         on_violation=run.violation)
        state = _JobState(policy, g, functions)
        run.functions = functions
        functions.run = run
        _replay(state, request.get("defs") or (), run)
    _jobs[run.job] = state
    while len(_jobs) > MAX_NAMESPACES:
        _jobs.popitem(last=False)
    return state


def _frozen(value: Any) -> Any:
    from statek.execution.job_functions import Params

    if type(value) is dict:
        return Params({k: _frozen(v) for k, v in value.items()})
    if type(value) in (list, tuple):
        return tuple(_frozen(v) for v in value)
    if type(value) is set:
        return frozenset(_frozen(v) for v in value)
    return value


def _replay(state: _JobState, sources: Any, run: _Run) -> None:
    """Re-run remembered def/class/import statements (as `JobNamespace._replay_definitions`)."""
    from statek.execution.interpreter import replay_sources

    g = state.globals
    errors, names = replay_sources(sources, state.policy, g)
    for error in errors:
        run.console.append(f"[statek] could not restore definition: {error}\n")
    for name in names:
        if name in g and not storable(g[name]):
            state.transient[name] = g[name]


def _refresh(state: _JobState, persisted: dict[str, Any]) -> None:
    """Make the namespace show exactly the persisted locals and this process's transient
    values (a failed statement's bindings, names deleted from outside: gone)."""
    g = state.globals
    transient = state.transient
    stale = [name for name in g
             if name[:1] != "_" and name not in persisted and name not in transient]
    for name in stale:
        del g[name]
    g.update(persisted)
    if transient:
        g.update(transient)


def execute(run_id: int, request: dict[str, Any]) -> dict[str, Any]:
    """Run a request; the outcome dict (see `_finish`)."""
    from statek.errors import SandboxViolation
    from statek.sandbox import compile_block

    run = _Run(run_id, request)
    policy = _policy(tuple(request["policy"]))
    state = _namespace(run, request, policy)
    functions = run.functions = state.functions
    functions.run = run
    persisted: dict[str, Any] = request.get("locals") or {}
    _refresh(state, persisted)
    snapshots = {name: (value, _blob(value)) for name, value in persisted.items()
                 if type(value) not in _SCALARS}
    try:
        block = compile_block(request["source"], policy)
    except SandboxViolation as exc:
        return {"kind": "failed", "next": 0, "upto": request["start"], "console": run.console,
                "error": f"SandboxViolation: {exc}"}
    done: dict[str, Any] = {}  # name -> value after the last completed statement (or _MISSING)
    if request.get("fresh", True) or state.context is None:
        state.context = contextvars.Context()  # as each in-process step runs in a task
    outcome = state.context.run(_statements, run, state, block, int(request["start"]), done)
    _delta(state, done, snapshots, outcome)
    outcome["console"] = run.console
    return outcome


def _statements(run: _Run, state: _JobState, block: Any, start: int,
                done: dict[str, Any]) -> dict[str, Any]:
    """Run the block's statements from `start` until one stops (exit, suspension, a tool to
    await, an error) or all completed; `done` gets the completed statements' bindings. Runs
    in the step's own context: process-global state kept in context variables (the decimal
    context) stays the step's."""
    g = state.globals
    functions = state.functions
    statements = block.statements
    outcome: dict[str, Any] = {}
    _Run._current = run
    try:
        index = start
        for index in range(start, len(statements)):
            stmt = statements[index]
            functions.stmt = index
            functions.calls = 0
            Signal.pending = None
            stopped = _statement(stmt, g, run, block.source)
            if run.over_budget:  # as in process: the statement ends the run, not persisted
                outcome = {"kind": "failed", "next": index, "upto": index, "error": ""}
                break
            if stopped is None:
                _record(stmt, g, done)
                continue
            outcome = stopped
            if outcome["kind"] == "exited":
                _record(stmt, g, done)
                outcome["upto"] = index + 1
            else:
                outcome["upto"] = index
            again = outcome["kind"] in ("waiting_on_future", "awaiting_tool")  # this stmt
            outcome["next"] = index + (0 if again else 1)
            break
        else:
            outcome = {"kind": "completed", "next": len(statements), "upto": len(statements)}
    finally:
        _Run._current = None
        Signal.pending = None
    return outcome


def _statement(stmt: Any, g: dict[str, Any], run: _Run, source: str) -> dict[str, Any] | None:
    """Run one statement; None when it completed, else the outcome it stopped with."""
    from statek.errors import SandboxViolation
    from statek.execution.interpreter import _format_error

    printed = len(run.console)
    try:
        if stmt.echo:
            value = eval(stmt.code, g)
            if isinstance(value, RemoteFuture):
                value.value  # noqa: B018 - a bare future statement waits for it
            elif value is not None:
                run.write(repr(value) + "\n")
        else:
            exec(stmt.code, g)
    except Signal:
        return _stopped(run, printed)
    except SandboxViolation as exc:
        if Signal.pending is not None:
            return _stopped(run, printed)
        return {"kind": "failed", "error": f"SandboxViolation: {exc}"}
    except BaseException as exc:  # job code's own BaseException subclasses too
        if Signal.pending is not None:
            return _stopped(run, printed)
        return {"kind": "failed", "error": _format_error(exc, stmt, source)}
    if Signal.pending is not None:  # swallowed by job code: takes effect anyway
        return _stopped(run, printed)
    return None


def _stopped(run: _Run, printed: int) -> dict[str, Any]:
    """The outcome of the signal a statement stopped with. One that waits (a future, an
    async tool) runs again from its start: what it printed so far goes (it prints it again),
    as in process (`JobFunctions.drop_printed`)."""
    signal = Signal.pending
    Signal.pending = None
    if isinstance(signal, Exit):
        return {"kind": "exited", "exit": signal.status}
    del run.console[printed:]
    if isinstance(signal, Suspend):
        return {"kind": "waiting_on_future", "future": signal.future}
    assert isinstance(signal, AwaitTool)
    return {"kind": "awaiting_tool", "tool": signal.call}


def _record(stmt: Any, g: dict[str, Any], done: dict[str, Any]) -> None:
    for name in stmt.assigned:
        done[name] = g.get(name, _MISSING)
    for name in stmt.deleted:
        done[name] = _MISSING


def _blob(value: Any) -> bytes | None:
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return None


def _delta(state: _JobState, done: dict[str, Any],
           snapshots: dict[str, tuple[Any, bytes | None]], outcome: dict[str, Any]) -> None:
    """What the scheduler persists: the names completed statements bound ("stored" values,
    "held" here because they cannot be stored, "absent"), and persisted containers changed
    in place. An unstorable exit status goes as its repr."""
    transient = state.transient
    stored: dict[str, Any] = {}
    held: list[str] = []
    absent: list[str] = []
    for name, value in done.items():
        if value is _MISSING:
            absent.append(name)
            transient.pop(name, None)
        elif storable(value):
            stored[name] = value
            transient.pop(name, None)
        else:
            held.append(name)
            transient[name] = value
    for name, (value, blob) in snapshots.items():
        if name not in done and blob is not None and _blob(value) != blob and storable(value):
            stored[name] = value
    outcome["stored"] = stored
    outcome["held"] = held
    outcome["absent"] = absent
    if outcome.get("kind") == "exited" and not storable(outcome["exit"]):
        status = outcome["exit"]
        shown = exit_preview.preview(status)  # as in-process: the job's __repr__ never runs
        if shown is not None:  # objects of the job's own: only their preview travels
            del outcome["exit"]
            outcome["exit_repr"] = (type(status).__name__, shown)
        # plain data the store cannot take (an int past 64 bits...) travels as it is: the
        # scheduler records it as in-process runs do (a bounded preview and an error)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except BaseException as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _encodable(run_id: int, outcome: dict[str, Any]) -> bytes:
    """The frame of an outcome; values pickle cannot take are reported as an error."""
    try:
        return dumps(("done", run_id, outcome))
    except BaseException as exc:
        fallback = {"kind": "failed", "next": outcome.get("next", 0),
                    "upto": outcome.get("upto", 0), "console": outcome.get("console", []),
                    "error": f"the isolated executor could not send the result: "
                             f"{type(exc).__name__}: {exc}\n",
                    "stored": {}, "held": [], "absent": []}
        return dumps(("done", run_id, fallback))


# --- main loop ---------------------------------------------------------------------------------


def serve(channel: Channel) -> None:
    while True:
        try:
            message = channel.next_request()
        except EOFError:
            return
        kind = message[0]
        if kind == "run":
            run_id, request = message[1], message[2]
            for job in request.get("drop") or ():
                _jobs.pop(job, None)
            limits.set_cpu_budget(int(request.get("cpu", 10)))
            try:
                outcome = execute(run_id, request)
            except BaseException as exc:  # the runner itself failed: the job gets the error
                outcome = {"kind": "failed", "next": 0, "upto": request.get("start", 0),
                           "console": [], "error": "isolated executor error: "
                           f"{type(exc).__name__}: {exc}\n", "stored": {}, "held": [],
                           "absent": []}
            data = memoryview(_encodable(run_id, outcome))
            while data:
                data = data[os.write(channel.wfd, data):]
        elif kind == "reset":
            _jobs.clear()
        elif kind == "ping":
            channel.send(("pong",))
        else:
            raise ProtocolError(f"unexpected message {kind!r}")


def _prepare(config: dict[str, Any]) -> str:
    """Imports, limits and the seccomp filter; the protection in force, as text."""
    import importlib

    import statek.execution.interpreter
    import statek.execution.job_functions
    import statek.sandbox  # noqa: F401

    sys.dont_write_bytecode = True
    for name in config.get("preload", ()):
        try:
            importlib.import_module(name)
        except Exception:
            continue
    limits.die_with_parent()
    limits.apply_resource_limits(int(config["memory_mb"]), int(config["open_files"]))
    return limits.apply_seccomp() if config.get("seccomp", True) else "off"


def main(argv: list[str]) -> int:
    global _channel
    config = json.loads(argv[1]) if len(argv) > 1 else {"memory_mb": 1024, "open_files": 64}
    # frames go on the original stdout; anything else printing goes to stderr
    wfd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    rfd = 0
    protection = _prepare(config)
    _channel = Channel(rfd, wfd)
    _channel.send(("ready", os.getpid(), protection))
    serve(_channel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""`@statek.tool`: functions job code may call and the model is told about.

Everything the model is told (name, signature, docstring, JSON schema) is computed once, at
registration; a step only looks the tool up by name.

A crash can make a step run again from its last committed statement (the group-commit
window), and with it the tool calls made since. A tool with side effects outside statek
(a payment, an e-mail) reads `idempotency_key()` during its call: the key names the job and
the call's place in the job's code (code, statement, call order), so a re-run of the same
step calls it with the same key and the tool (or the service behind it) can skip a repeat.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from statek.errors import StatekError

F = TypeVar("F", bound=Callable[..., Any])

_JSON_TYPES: dict[Any, str] = {
    int: "integer", float: "number", str: "string", bool: "boolean",
    list: "array", tuple: "array", dict: "object",
    "int": "integer", "float": "number", "str": "string", "bool": "boolean",
    "list": "array", "tuple": "array", "dict": "object",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    func: Callable[..., Any]
    is_async: bool
    signature: str
    doc: str
    parameters: dict[str, Any]

    def describe(self) -> str:
        """One line for the system prompt of a code-first agent."""
        first = self.doc.strip().splitlines()[0] if self.doc.strip() else ""
        return f"{self.name}{self.signature}" + (f"  # {first}" if first else "")


_registry: dict[str, ToolInfo] = {}


def _schema(sig: inspect.Signature) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for param in sig.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        json_type = _JSON_TYPES.get(param.annotation)
        props[param.name] = {"type": json_type} if json_type else {}
        if param.default is param.empty:
            required.append(param.name)
    return {"type": "object", "properties": props, "required": required}


def _register(func: Callable[..., Any], name: str | None) -> ToolInfo:
    tool_name = name or func.__name__
    if not tool_name.isidentifier() or tool_name.startswith("_"):
        raise StatekError(f"tool name {tool_name!r} must be a public Python identifier")
    try:  # resolve string annotations (`from __future__ import annotations`) for the model
        sig = inspect.signature(func, eval_str=True)
    except Exception:
        sig = inspect.signature(func)
    info = ToolInfo(
        name=tool_name,
        func=func,
        is_async=inspect.iscoroutinefunction(func),
        signature=str(sig),
        doc=inspect.getdoc(func) or "",
        parameters=_schema(sig),
    )
    _registry[tool_name] = info
    return info


@overload
def tool(func: F, /) -> F: ...
@overload
def tool(*, name: str | None = None) -> Callable[[F], F]: ...


def tool(func: Any = None, /, *, name: str | None = None) -> Any:
    """Register a sync or async function as a tool (usable bare or as `@tool(name=...)`)."""

    def decorate(f: F) -> F:
        _register(f, name)
        return f

    return decorate(func) if func is not None else decorate


def tool_name_of(obj: Callable[..., Any] | str) -> str:
    """A tool's registered name; registers plain callables on the fly."""
    if isinstance(obj, str):
        return obj
    for info in _registry.values():
        if info.func is obj:
            return info.name
    return _register(obj, None).name


def get_tool(name: str) -> ToolInfo:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise StatekError(f"no tool named {name!r} is registered (known: {known})") from None


def find_tool(name: str) -> ToolInfo | None:
    return _registry.get(name)


def registered_tools() -> dict[str, ToolInfo]:
    return dict(_registry)


_call_key: ContextVar[str | None] = ContextVar("statek_tool_call_key", default=None)


def idempotency_key() -> str:
    """Inside a tool call made by a job: a key for this call, the same when a re-run of the
    same step (after a crash) makes the call again, and different for every other call.

    Raises StatekError outside a tool call."""
    key = _call_key.get()
    if key is None:
        raise StatekError("idempotency_key() is only available while a job calls a tool")
    return key


@contextlib.contextmanager
def tool_call_key(key: str) -> Iterator[None]:
    """Make `key` the `idempotency_key()` of the tool call run inside this block (the
    runtime wraps each call of a tool with it)."""
    token = _call_key.set(key)
    try:
        yield
    finally:
        _call_key.reset(token)

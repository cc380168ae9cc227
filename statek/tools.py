"""`@statek.tool`: functions job code may call and the model is told about.

Everything the model is told (name, signature, docstring, JSON schema) is computed once, at
registration; a step only looks the tool up by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
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

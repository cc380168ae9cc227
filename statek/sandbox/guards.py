"""Runtime half of the sandbox: the hooks restricted code calls, and the namespace holding them.

RestrictedPython rewrites ``a.b`` into ``_getattr_(a, "b")``, ``a[b] = c`` into
``_write_(a)[b] = c`` and so on; the functions here decide, while the code runs, what those
calls may do. They repeat the compile-time checks (defence in depth) and add what only runtime
can see: which module an attribute turns out to be, whose object is being written.

A violation is reported to the namespace's ``on_violation`` callback before it is raised, so
it is recorded even if job code swallows it with ``except Exception``. The hooks are shared by
every namespace of a policy (building a namespace stays a couple of dict copies), so they find
the callback by walking up the stack to the innermost frame running job code.
"""

from __future__ import annotations

import builtins
import collections
import decimal
import functools
import importlib
import operator
import sys
import threading
import weakref
from abc import ABCMeta
from collections.abc import Callable, Iterable, Mapping
from types import (
    AsyncGeneratorType,
    CellType,
    CodeType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MappingProxyType,
    ModuleType,
    TracebackType,
)
from typing import Any, NoReturn

from statek.errors import SandboxViolation
from statek.models.containers import is_mutable_container
from statek.sandbox.audit import VIOLATION_HOOK_KEY, install_audit_hook, refuse, trust_host_code
from statek.sandbox.isolation import (
    MEMO_RULES,
    is_random_function,
    job_getcontext,
    job_random_function,
    memo_attribute,
    memo_rule,
)
from statek.sandbox.policy import (
    DENIED_ATTRIBUTES,
    FORBIDDEN_BUILTINS,
    JOB_FILENAME,
    JOB_MODULE_NAME,
    MODULE_DENIED_ATTRIBUTES,
    SAFE_BUILTIN_NAMES,
    SandboxPolicy,
)

__all__ = ["VIOLATION_HOOK_KEY", "refuse", "trust_host_code"]

ViolationHook = Callable[[SandboxViolation], None]


def _ignore_violation(violation: SandboxViolation) -> None:
    """Stored when the caller passed no callback, so the stack walk stops at the job frame."""


def is_internal_name(name: str) -> bool:
    """True for names the sandbox puts in a namespace, and for every name starting with "_".

    Every key exec_globals() adds starts with "_" (builtins and tools live in the separate
    ``__builtins__`` dict), and restricted code cannot bind such names itself.
    """
    return name.startswith("_")


# --- objects the job created ------------------------------------------------------------------

_job_classes: weakref.WeakSet[type] = weakref.WeakSet()


def _build_job_class(func: Callable[[], Any], name: str, /, *bases: Any, **kwds: Any) -> Any:
    """``__build_class__`` for job code: remembers the class so the job may write to it."""
    cls = builtins.__build_class__(func, name, *bases, **kwds)
    if isinstance(cls, type):
        _job_classes.add(cls)
    return cls


def _is_job_function(obj: object) -> bool:
    return isinstance(obj, FunctionType) and obj.__code__.co_filename == JOB_FILENAME


def _is_job_class(obj: object) -> bool:
    return isinstance(obj, type) and obj in _job_classes


# --- modules ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _viewable_modules(allowed: frozenset[str]) -> frozenset[str]:
    """Allowed modules plus their parent packages (``import a.b`` binds ``a``)."""
    names = set(allowed) | {"__future__"}
    for name in allowed:
        parts = name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(names)


def _allowed_text(allowed: frozenset[str]) -> str:
    return ", ".join(sorted(allowed)) or "none"


class ModuleView:
    """Read-only stand-in for a module handed to restricted code.

    Imports return views, never modules, so ``import m; m.x`` and ``from m import x`` go
    through the same check: denied names are refused, and a module reached through an
    attribute (``json.codecs``, ``re.enum``, ``fractions.operator``) must itself be allowed.
    It has no public attributes of its own.
    """

    __slots__ = ("_allowed", "_module")

    _module: ModuleType
    _allowed: frozenset[str]

    def __init__(self, module: ModuleType, allowed: frozenset[str]) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_allowed", allowed)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        module = self._module
        module_name = module.__name__
        reason = MODULE_DENIED_ATTRIBUTES.get(module_name, {}).get(name)
        if reason is not None:
            refuse(f"{module_name}.{name} is not available in restricted mode: {reason}")
        if name in DENIED_ATTRIBUTES:
            refuse(f"attribute {name!r} is not accessible in restricted mode")
        substitute = _SUBSTITUTES.get((module_name, name))
        if substitute is not None:
            return substitute
        if is_random_function(module_name, name):
            return job_random_function(name)
        value = getattr(module, name)
        if isinstance(value, ModuleType):
            return view_module(value, self._allowed, via=f"{module_name}.{name}")
        return value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"module {self._module.__name__!r} is read-only in restricted mode")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self._module.__name__!r} is read-only in restricted mode")

    def __repr__(self) -> str:
        return f"<module {self._module.__name__!r} (restricted)>"

    def __dir__(self) -> Iterable[str]:
        denied = MODULE_DENIED_ATTRIBUTES.get(self._module.__name__, {})
        return sorted(n for n in vars(self._module) if not n.startswith("_") and n not in denied)


_views: dict[tuple[str, frozenset[str]], ModuleView] = {}


def view_module(module: ModuleType, allowed: frozenset[str], *, via: str = "") -> ModuleView:
    """The (cached) view of `module`, refusing modules the policy does not allow."""
    name = module.__name__
    if name not in _viewable_modules(allowed):
        where = f" (reached through {via})" if via else ""
        refuse(
            f"access to module {name!r}{where} is not allowed (allowed: {_allowed_text(allowed)})"
        )
    key = (name, allowed)
    view = _views.get(key)
    if view is None or view._module is not module:
        view = _views[key] = ModuleView(module, allowed)
    return view


def module_view_name(obj: object) -> str | None:
    """Name of the module behind a ModuleView (for callers persisting job locals), else None."""
    return obj._module.__name__ if isinstance(obj, ModuleView) else None


# functools helpers that write attributes (and read them by caller-chosen names) on their
# argument: only allowed on functions and classes the job defined itself.


def _require_job_function(obj: object, what: str) -> None:
    if not _is_job_function(obj):
        refuse(f"{what} may only wrap functions defined by the job in restricted mode")


def _require_job_wrapped(obj: object, what: str) -> None:
    """The wrapped object's names are copied onto the wrapper: they must be the job's own, or
    a wrapper could claim any module and name (and be imported by it when stored)."""
    if not (_is_job_function(obj) or _is_job_class(obj)
            or (callable(obj) and getattr(obj, "__module__", None) == JOB_MODULE_NAME)):
        refuse(f"{what} may only copy the names of functions and classes the job defined")


def _safe_update_wrapper(wrapper: Any, wrapped: Any) -> Any:
    _require_job_function(wrapper, "functools.update_wrapper()")
    _require_job_wrapped(wrapped, "functools.update_wrapper()")
    return functools.update_wrapper(wrapper, wrapped)


def _safe_wraps(wrapped: Any) -> Callable[[Any], Any]:
    _require_job_wrapped(wrapped, "functools.wraps()")

    def decorate(wrapper: Any) -> Any:
        _require_job_function(wrapper, "functools.wraps()")
        return functools.update_wrapper(wrapper, wrapped)

    return decorate


def _safe_total_ordering(cls: Any) -> Any:
    if not _is_job_class(cls):
        refuse("functools.total_ordering() may only decorate classes defined by the job")
    return functools.total_ordering(cls)


@trust_host_code  # namedtuple builds its __new__ from a string (of checked identifiers)
def _safe_namedtuple(
    typename: Any, field_names: Any, *, rename: bool = False, defaults: Any = None,
    module: Any = None,
) -> Any:
    """``collections.namedtuple`` whose classes belong to the job: ``module=`` would let job
    code name any module, and dbzero imports a stored class by its module and name."""
    if module is not None:
        refuse("collections.namedtuple(module=...) is not available in restricted mode: the "
               "classes a job makes belong to the job")
    if not isinstance(typename, str) or not (isinstance(field_names, str) or all(
            isinstance(field, str) for field in list(field_names))):
        raise TypeError("namedtuple() needs a str type name and str field names")
    factory: Any = collections.namedtuple  # (mypy checks literal arguments only)
    cls = factory(typename, field_names, rename=bool(rename),
                                 defaults=None if defaults is None else tuple(defaults),
                                 module=JOB_MODULE_NAME)
    _job_classes.add(cls)
    return cls


_SUBSTITUTES: dict[tuple[str, str], Any] = {
    ("functools", "update_wrapper"): _safe_update_wrapper,
    ("functools", "wraps"): _safe_wraps,
    ("functools", "total_ordering"): _safe_total_ordering,
    ("collections", "namedtuple"): _safe_namedtuple,
    ("decimal", "getcontext"): job_getcontext,
}


# --- attribute, item and write hooks -------------------------------------------------------

_OPAQUE_TYPES = frozenset({FrameType, CodeType, TracebackType, CellType, MappingProxyType})
_SUSPENDABLE_TYPES = frozenset({GeneratorType, CoroutineType, AsyncGeneratorType})
_SUSPENDABLE_OK = frozenset({"send", "throw", "close"})

#: Plain containers job code may assign items on even if it did not create them. Anything
#: else (modules, host classes, functions, tools) is read-only; instances and classes defined
#: by the job are writable.
_WRITABLE_TYPES = frozenset(
    {
        dict, list, bytearray, collections.OrderedDict, collections.defaultdict,
        collections.Counter, collections.deque,
        # decimal contexts job code can reach are its own: decimal.getcontext() hands out
        # one private to the step, Context() and localcontext() make new ones
        decimal.Context, type(decimal.Context().traps),
    }
)  # fmt: skip


def _make_getattr(allowed: frozenset[str]) -> Callable[[object, str], Any]:
    def guarded_getattr(obj: object, name: str) -> Any:
        if type(name) is not str:
            refuse("attribute names must be str in restricted mode")
        if name.startswith("_") or name in DENIED_ATTRIBUTES:
            refuse(f"attribute {name!r} is not accessible in restricted mode")
        cls = type(obj)
        if cls in _OPAQUE_TYPES:
            refuse(f"attributes of {cls.__name__} objects are not accessible in restricted mode")
        if cls in _SUSPENDABLE_TYPES and name not in _SUSPENDABLE_OK:
            refuse(f"attribute {name!r} of {cls.__name__} objects is not accessible")
        if name == "register" and isinstance(obj, ABCMeta):
            # Even on a job's subclass: the host ABCs above it consult their subclasses.
            refuse(
                f"{obj.__name__}.register() is not available in restricted mode: it changes "
                "isinstance() results for every job"
            )
        if isinstance(obj, ModuleType):  # a real module handed over by the caller
            obj = view_module(obj, allowed)
        rule = MEMO_RULES.get(cls, False)
        if rule is False:
            rule = memo_rule(obj)
        if rule is not None:  # a persisted object: a read-only view of it
            return memo_attribute(obj, name, rule)
        value = getattr(obj, name)
        if isinstance(value, ModuleType):
            return view_module(value, allowed, via=f"attribute {name!r}")
        return value

    return guarded_getattr


def _guarded_write(obj: Any) -> Any:
    cls = type(obj)
    if (cls in _WRITABLE_TYPES or cls in _job_classes or _is_job_class(obj)
            or is_mutable_container(obj)):
        return obj
    if isinstance(obj, ModuleView):
        what = f"module {obj._module.__name__!r}"
    elif isinstance(obj, type):
        what = f"class {obj.__name__!r} (not defined by the job)"
    else:
        what = f"{cls.__name__!r} objects"
    refuse(
        f"cannot modify {what} in restricted mode: only dict/list-like containers and "
        "objects of classes defined by the job are writable"
    )


_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}  # fmt: skip


def _inplace(op: str, target: Any, value: Any) -> Any:
    return _INPLACE_OPERATORS[op](target, value)


def _make_augmented(
    guarded_getattr: Callable[[object, str], Any],
) -> tuple[Callable[[Any, str, str, Any], None], Callable[[Any, Any, str, Any], None]]:
    """Hooks for ``obj.name op= value`` and ``obj[key] op= value``."""

    def augmented_attribute(obj: Any, name: str, op: str, value: Any) -> None:
        result = _INPLACE_OPERATORS[op](guarded_getattr(obj, name), value)
        setattr(_guarded_write(obj), name, result)

    def augmented_item(obj: Any, key: Any, op: str, value: Any) -> None:
        result = _INPLACE_OPERATORS[op](obj[key], value)
        _guarded_write(obj)[key] = result

    return augmented_attribute, augmented_item


#: Binary operators restricted code calls through `_binop_` (those dbzero 0.7.0 containers
#: implement; see the compiler): plain here, value-checking in statek.models.value_checks.
BINARY_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "|": operator.or_,
    "^": operator.xor, "&": operator.and_,
}  # fmt: skip


def _contains(item: Any, container: Any) -> bool:
    return item in container


def _not_contains(item: Any, container: Any) -> bool:
    return item not in container


#: Comparison operators by their source text: `_compare_` and `_chain_` take these names.
COMPARE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne, "is": operator.is_, "is not": operator.is_not,
    "in": _contains, "not in": _not_contains,
}  # fmt: skip


def _binop(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for the operators in BINARY_OPERATORS."""
    return BINARY_OPERATORS[op](left, right)


def _compare(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for any operator in COMPARE_OPERATORS (the compiler routes the
    ordered ones here; `_chain_` all of a chain's)."""
    return COMPARE_OPERATORS[op](left, right)


def make_chain(
    compare: Callable[[str, Any, Any], Any],
) -> Callable[..., Any]:
    """The ``_chain_`` hook over a `compare` hook: ``a < b <= c`` compiles to
    ``_chain_(a, ("<", "<="), b, lambda: c)``. Like Python, each operand is evaluated once,
    in order, and the chain stops at the first false comparison, returning its result."""

    def chain(left: Any, ops: tuple[str, ...], right: Any, *later: Callable[[], Any]) -> Any:
        result = compare(ops[0], left, right)
        for op, operand in zip(ops[1:], later, strict=True):
            if not result:
                return result
            left, right = right, operand()
            result = compare(op, left, right)
        return result

    return chain


_chain = make_chain(_compare)


def _apply(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _unpack(value: Any, spec: object, getiter: object) -> Any:
    """Sequence unpacking needs no guard here: iteration hands out nothing attribute access
    would not (RestrictedPython's guarded unpacking exists for Zope's security proxies)."""
    return value


# --- builtins -------------------------------------------------------------------------------


class ForbiddenBuiltin:
    """Bound to a forbidden builtin name: calling it is a violation, naming it is not, so job
    code may still use ``type``/``input``/``dir`` as variable names."""

    __slots__ = ("_name", "_reason")

    def __init__(self, name: str, reason: str) -> None:
        self._name = name
        self._reason = reason

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        refuse(f"{self._name}() is not available in restricted mode: {self._reason}")

    def __repr__(self) -> str:
        return f"<forbidden builtin {self._name!r}>"


_FORBIDDEN = {name: ForbiddenBuiltin(name, reason) for name, reason in FORBIDDEN_BUILTINS.items()}


#: Private modules the C code of allowed modules imports lazily through the job's __import__.
_C_HELPER_IMPORTS = frozenset({"_strptime"})


def _make_import(allowed: frozenset[str]) -> Callable[..., ModuleView]:
    allowed_text = _allowed_text(allowed)

    def guarded_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Iterable[str] | None = (),
        level: int = 0,
    ) -> ModuleView:
        if level:
            refuse(f"relative import of {name!r} is not allowed in restricted mode")
        if name in _C_HELPER_IMPORTS and not fromlist:
            # asked for by an allowed module's C code (datetime.strptime imports _strptime
            # through the caller's __import__); job code cannot name it (compile-time check)
            return importlib.import_module(name)  # type: ignore[return-value]
        if name not in allowed and name != "__future__":
            refuse(f"import of {name!r} is not allowed (allowed: {allowed_text})")
        module = importlib.import_module(name)
        if fromlist:
            if "*" in fromlist:
                refuse(f"'from {name} import *' is not allowed in restricted mode")
            # The names are fetched from the view by the interpreter, which checks each one.
            return view_module(module, allowed)
        return view_module(sys.modules[name.partition(".")[0]], allowed)

    return guarded_import


def _make_hasattr(guarded_getattr: Callable[[object, str], Any]) -> Callable[[object, str], bool]:
    def guarded_hasattr(obj: object, name: str) -> bool:
        try:
            guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    return guarded_hasattr


class _JobPrint:
    """The job's ``print``: formats exactly like the builtin (same argument checks) and hands
    the text of each call, ``end`` included, to the caller's sink. A class rather than a
    closure: creating one per namespace is half the cost, and it exposes no attributes."""

    __slots__ = ("_restricted", "_sink")

    def __init__(self, sink: Callable[[str], None], restricted: bool) -> None:
        self._sink = sink
        self._restricted = restricted

    def __call__(
        self,
        *args: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if sep is None:
            sep = " "
        elif not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        if end is None:
            end = "\n"
        elif not isinstance(end, str):
            raise TypeError(f"end must be None or a string, not {type(end).__name__}")
        if file is None:
            self._sink(sep.join([str(arg) for arg in args]) + end)
        elif self._restricted:
            refuse("print(file=...) is not available in restricted mode; print() is captured")
        else:
            builtins.print(*args, sep=sep, end=end, file=file, flush=flush)

    def __repr__(self) -> str:
        return "<built-in function print>"


# --- namespaces -------------------------------------------------------------------------------


def _restricted_template(policy: SandboxPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
    install_audit_hook()
    allowed = policy.allowed_imports
    guarded_getattr = _make_getattr(allowed)
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES}
    safe.update(_FORBIDDEN)
    safe["__build_class__"] = _build_job_class
    safe["__import__"] = _make_import(allowed)
    safe["hasattr"] = _make_hasattr(guarded_getattr)
    augmented_attribute, augmented_item = _make_augmented(guarded_getattr)
    namespace: dict[str, Any] = {
        "__name__": JOB_MODULE_NAME,
        "__metaclass__": type,
        "_getattr_": guarded_getattr,
        "_getitem_": operator.getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": _unpack,
        "_unpack_sequence_": _unpack,
        "_write_": _guarded_write,
        "_inplacevar_": _inplace,
        "_augattr_": augmented_attribute,
        "_augitem_": augmented_item,
        "_apply_": _apply,
        "_reraise_uncatchable_": _reraise_uncatchable,
        "_in_": _contains,
        "_binop_": _binop,
        "_compare_": _compare,
        "_chain_": _chain,
    }
    return namespace, safe


def _unrestricted_template() -> tuple[dict[str, Any], dict[str, Any]]:
    return {"__name__": JOB_MODULE_NAME}, dict(vars(builtins))


#: Exceptions job code may not keep: an `except` clause in restricted code re-raises them
#: before its own body runs (the runtime registers its step-budget exception here).
_UNCATCHABLE: list[type[BaseException]] = []


def make_uncatchable(kind: type[BaseException]) -> None:
    """Let no `except` clause in restricted job code swallow `kind`."""
    if kind not in _UNCATCHABLE:
        _UNCATCHABLE.append(kind)


def _reraise_uncatchable() -> None:
    """First statement of every `except` clause of restricted code (see the compiler)."""
    caught = sys.exc_info()[1]
    if caught is not None and _UNCATCHABLE and isinstance(caught, tuple(_UNCATCHABLE)):
        raise caught


_Template = tuple[dict[str, Any], dict[str, Any]]
_templates: dict[int, _Template] = {}  # by policy number: equal policies share it
_templates_lock = threading.Lock()


def _template_for(policy: SandboxPolicy) -> _Template:
    with _templates_lock:
        template = _templates.get(policy._number)
        if template is None:
            template = (
                _restricted_template(policy) if policy.restricted else _unrestricted_template()
            )
            _templates[policy._number] = template
        return template


_NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


def exec_globals(
    policy: SandboxPolicy,
    *,
    print_sink: Callable[[str], None],
    extra_builtins: Mapping[str, Any] = _NO_EXTRAS,
    on_violation: ViolationHook | None = None,
) -> dict[str, Any]:
    """A fresh namespace to run one block's statements in.

    ``__builtins__`` is a private dict (safe builtins, or all of them when unrestricted) whose
    ``print`` sends one string per call to `print_sink`; `extra_builtins` are added to it and
    win. The hooks restricted code needs sit next to it; every key starts with "_".
    """
    template = _templates.get(policy._number) or _template_for(policy)
    namespace_template, builtins_template = template
    job_builtins = builtins_template.copy()
    job_builtins["print"] = _JobPrint(print_sink, policy.restricted)
    if extra_builtins:
        job_builtins.update(extra_builtins)
    namespace = namespace_template.copy()
    namespace["__builtins__"] = job_builtins
    namespace[VIOLATION_HOOK_KEY] = _ignore_violation if on_violation is None else on_violation
    return namespace


def rebind_exec_globals(
    namespace: dict[str, Any],
    policy: SandboxPolicy,
    *,
    print_sink: Callable[[str], None],
    extra_builtins: Mapping[str, Any] = _NO_EXTRAS,
    on_violation: ViolationHook | None = None,
) -> None:
    """Point a namespace made by `exec_globals` for `policy` at a new sink, extras and
    violation hook, keeping everything else (cheaper than a new one when it is reused)."""
    job_builtins = namespace["__builtins__"]
    job_builtins["print"] = _JobPrint(print_sink, policy.restricted)
    if extra_builtins:
        job_builtins.update(extra_builtins)
    namespace[VIOLATION_HOOK_KEY] = _ignore_violation if on_violation is None else on_violation

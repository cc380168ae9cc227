"""What restricted job code may touch: the policy object and the allow/deny lists behind it.

Everything here is data. The compiler checks source against it before running anything; the
runtime guards check it again while the code runs, because attribute names and imported
modules can be reached in ways no static check sees.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from statek.errors import ConfigurationError

#: Filename given to every compiled job statement. Tracebacks show it; the guards use it to
#: recognise functions the job itself defined (job code cannot compile code of its own).
JOB_FILENAME = "<statek-job>"

#: ``__name__`` of the job namespace, hence ``__module__`` of the classes and functions it defines.
JOB_MODULE_NAME = "__statek_job__"

#: Pure computation: no frames, files, processes, threads or attribute access by name.
DEFAULT_ALLOWED_IMPORTS: frozenset[str] = frozenset(
    {
        "bisect",
        "collections",
        "datetime",
        "decimal",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "random",
        "re",
        "statistics",
        "textwrap",
        "time",
        "uuid",
    }
)

#: Never importable in restricted mode, whatever a policy lists: each one hands out frames,
#: files, processes, the interpreter itself, or attribute access by name (which defeats the
#: attribute guard). A policy naming one of these is a configuration error, not a silent drop.
NEVER_IMPORTABLE: frozenset[str] = frozenset(
    {
        "asyncio", "builtins", "code", "codecs", "codeop", "concurrent", "copyreg", "ctypes",
        "dataclasses", "dis", "enum", "faulthandler", "gc", "glob", "importlib", "inspect",
        "io", "linecache", "logging", "marshal", "multiprocessing", "operator", "os", "pathlib",
        "pdb", "pickle", "platform", "posix", "pty", "resource", "runpy", "shelve", "shutil",
        "signal", "site", "socket", "string", "subprocess", "sys", "sysconfig", "tempfile",
        "threading", "traceback", "tracemalloc", "types", "typing", "warnings", "weakref",
    }
)  # fmt: skip

#: Builtins restricted code gets (``print`` and the hooks are added per namespace).
#: ``getattr``/``type``/``vars`` and friends are absent on purpose: see FORBIDDEN_BUILTINS.
SAFE_BUILTIN_NAMES: frozenset[str] = frozenset(
    {
        "None", "True", "False", "Ellipsis", "NotImplemented",
        "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
        "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
        "frozenset", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter", "len",
        "list", "map", "max", "min", "next", "object", "oct", "ord", "pow", "property", "range",
        "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum",
        "tuple", "zip",
        # exceptions, so job code can raise and catch the usual ones (not SystemExit or
        # KeyboardInterrupt: raising those is the runtime's business, via the injected exit)
        "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "BufferError",
        "ConnectionError", "EOFError", "Exception", "ExceptionGroup", "FileExistsError",
        "FileNotFoundError", "FloatingPointError", "GeneratorExit", "ImportError", "IndexError",
        "IOError", "KeyError", "LookupError", "MemoryError", "ModuleNotFoundError", "NameError",
        "NotImplementedError", "OSError", "OverflowError", "PermissionError", "RecursionError",
        "ReferenceError", "RuntimeError", "StopIteration", "SyntaxError", "TimeoutError",
        "TypeError", "UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError",
        "UnicodeError", "ValueError", "Warning", "UserWarning", "DeprecationWarning",
        "RuntimeWarning", "ZeroDivisionError",
    }
)  # fmt: skip

#: Builtins that would hand out code execution, namespaces, attribute access by name, I/O or
#: the class hierarchy. In restricted mode each name is bound to a tripwire that reports a
#: violation when called, so a job may still use the name for its own variables.
FORBIDDEN_BUILTINS: dict[str, str] = {
    "eval": "it runs arbitrary code",
    "exec": "it runs arbitrary code",
    "compile": "it creates code objects",
    "open": "there is no file access",
    "input": "there is no console",
    "getattr": "it reads attributes by name; use plain attribute access",
    "setattr": "it writes attributes by name; use plain attribute assignment",
    "delattr": "it deletes attributes by name",
    "globals": "it exposes the namespace",
    "locals": "it exposes the namespace",
    "vars": "it exposes object internals",
    "dir": "it exposes object internals",
    "type": "it reaches the class hierarchy; use isinstance()",
    "super": "it reaches the class hierarchy",
    "memoryview": "it exposes raw memory",
    "breakpoint": "there is no debugger",
    "help": "there is no console",
    "aiter": "async iteration is not supported",
    "anext": "async iteration is not supported",
}

#: Attribute names refused on every object. Names starting with "_" are refused separately.
#: Frame/generator/coroutine/traceback/code internals lead back to globals and builtins;
#: ``format``/``format_map`` would let a format string walk attributes (``"{0.__class__}"``),
#: on ``str`` and on look-alikes such as ``collections.UserString``; ``mro`` walks classes.
DENIED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "format", "format_map", "mro",
        "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "gi_suspended",
        "cr_frame", "cr_code", "cr_await", "cr_origin", "cr_running", "cr_suspended",
        "ag_frame", "ag_code", "ag_await", "ag_running",
        "f_back", "f_builtins", "f_code", "f_generator", "f_globals", "f_locals", "f_trace",
        "f_trace_lines", "f_trace_opcodes", "f_lasti",
        "tb_frame", "tb_next", "tb_lasti",
        "co_code", "co_consts", "co_names", "co_varnames", "co_freevars", "co_cellvars",
        "co_lines", "co_positions", "co_filename", "co_linetable", "co_exceptiontable",
        "func_globals", "func_code", "func_closure", "func_defaults", "func_dict",
        "im_func", "im_self", "im_class", "cell_contents",
        # process-wide mutable state shared by every job
        "unicode_whitespace_trans",
    }
)  # fmt: skip

#: Per-module attributes refused although the module is allowed, with the reason shown.
MODULE_DENIED_ATTRIBUTES: dict[str, dict[str, str]] = {
    "time": {
        "sleep": "it blocks the whole scheduler; ask the runtime to wait instead",
        "tzset": "it changes process-wide state",
        "clock_settime": "it sets the system clock",
        "clock_settime_ns": "it sets the system clock",
    },
    "uuid": {
        "getnode": "it may start processes to read the MAC address",
        "uuid1": "it may start processes to read the MAC address; use uuid4()",
    },
    "decimal": {
        "setcontext": "it changes the context every job shares; use decimal.localcontext()",
        "DefaultContext": "it is shared by every job",
        "BasicContext": "it is shared by every job",
        "ExtendedContext": "it is shared by every job",
    },
}

#: Special methods a job class may define: they only run when Python itself calls them and
#: cannot be reached by name (dunder attribute access stays refused).
ALLOWED_DUNDER_METHODS: frozenset[str] = frozenset(
    {
        "__init__", "__repr__", "__str__", "__len__", "__iter__", "__next__", "__contains__",
        "__getitem__", "__setitem__", "__delitem__", "__bool__", "__hash__", "__call__",
        "__enter__", "__exit__",
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
        "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__",
        "__neg__", "__pos__", "__abs__",
    }
)  # fmt: skip


_numbers: dict[tuple[object, ...], int] = {}
_numbers_lock = threading.Lock()


def _number_for(value: tuple[object, ...]) -> int:
    with _numbers_lock:  # two policies must never get the same number
        return _numbers.setdefault(value, len(_numbers))


def _importable_name(name: str) -> bool:
    parts = name.split(".")
    return (
        all(part.isidentifier() and not part.startswith("_") for part in parts)
        and parts[0] not in NEVER_IMPORTABLE
    )


@dataclass(frozen=True)
class SandboxPolicy:
    """How job code is compiled and guarded. Hashable: part of the compile cache key.

    ``restricted=False`` keeps only the size limits, the per-statement split and print
    capture: for trusted code.
    """

    restricted: bool = True
    allowed_imports: frozenset[str] = DEFAULT_ALLOWED_IMPORTS
    max_source_chars: int = 100_000
    max_ast_nodes: int = 20_000
    #: Equal policies share it. Caches key on it: hashing a dataclass runs Python code, and
    #: a compile-cache hit must cost about one dict lookup.
    _number: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        imports = frozenset(self.allowed_imports)
        if self.restricted:
            bad = sorted(name for name in imports if not _importable_name(name))
            if bad:
                raise ConfigurationError(
                    f"SandboxPolicy.allowed_imports names modules restricted mode never "
                    f"allows: {', '.join(bad)}"
                )
        if self.max_source_chars <= 0 or self.max_ast_nodes <= 0:
            raise ConfigurationError("SandboxPolicy limits must be positive")
        object.__setattr__(self, "allowed_imports", imports)
        value = (self.restricted, imports, self.max_source_chars, self.max_ast_nodes)
        object.__setattr__(self, "_number", _number_for(value))

    def __hash__(self) -> int:
        return self._number

    def __reduce__(self) -> tuple[type[SandboxPolicy], tuple[object, ...]]:
        # Rebuild through __init__: a number copied from another process could name a
        # different policy here, and the caches would serve that policy's code.
        fields = (self.restricted, self.allowed_imports, self.max_source_chars, self.max_ast_nodes)
        return (SandboxPolicy, fields)

"""Known ways out of a Python sandbox, each refused with a message naming the construct.

Every case says where it must be stopped: "compile" (the source is refused before anything
runs) or "run" (it compiles, and a runtime guard refuses it; the violation must then reach
on_violation before it is raised).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import textwrap
import types
from typing import Any

import pytest

from statek.errors import SandboxViolation
from statek.sandbox import SandboxPolicy, compile_block, exec_globals

POLICY = SandboxPolicy()


def run_job(source: str, reported: list[SandboxViolation] | None = None, **extra: Any) -> None:
    """Compile and run `source` in restricted mode; on_violation appends to `reported`."""
    sink = [] if reported is None else reported
    block = compile_block(textwrap.dedent(source), POLICY)
    namespace = exec_globals(
        POLICY, print_sink=lambda text: None, extra_builtins=extra, on_violation=sink.append
    )
    for statement in block.statements:
        (eval if statement.echo else exec)(statement.code, namespace)


# fmt: off
ESCAPES: list[tuple[str, str, str, str]] = [
    # (id, source, phase, expected message fragment)
    # class-hierarchy walks
    ("subclasses-walk", "().__class__.__bases__[0].__subclasses__()", "compile", "'__class__'"),
    ("list-class", "[].__class__", "compile", "attribute '__class__' is not accessible"),
    ("mro", "int.mro()", "compile", "attribute 'mro'"),
    ("object-subclasses", "object.__subclasses__()", "compile", "'__subclasses__'"),
    ("dict-getitem-dunder", "dict.__getitem__({}, 'k')", "compile", "'__getitem__'"),
    ("type-call", "type(1)", "run", "type() is not available"),
    ("super-call", "super()", "run", "super() is not available"),
    # format strings reaching attributes
    ("str-format", "'{0.__class__}'.format(1)", "compile", "attribute 'format'"),
    ("str-format-map", "'{x.__globals__}'.format_map({'x': len})", "compile", "'format_map'"),
    ("str-format-unbound", "str.format('{0.__class__}', 1)", "compile", "attribute 'format'"),
    (
        "userstring-format",
        "import collections\ncollections.UserString('{0.__class__}').format(0)",
        "compile",
        "attribute 'format'",
    ),
    ("fstring-dunder", "x = 1\nf'{x.__class__}'", "compile", "'__class__'"),
    ("fstring-nested-spec", "x = 1\nf'{x:{x.__class__}}'", "compile", "'__class__'"),
    ("string-formatter", "import string\nstring.Formatter()", "compile", "import of 'string'"),
    # frames of generators, coroutines, async generators, tracebacks
    ("generator-frame", "g = (i for i in [1])\ng.gi_frame.f_globals", "compile", "'gi_frame'"),
    ("generator-code", "g = (i for i in [1])\ng.gi_code", "compile", "'gi_code'"),
    ("coroutine-def", "async def f():\n    pass", "compile", "'async def' is not allowed"),
    ("coroutine-frame", "c = make()\nc.cr_frame", "compile", "'cr_frame'"),
    ("async-gen-frame", "a = make()\na.ag_frame.f_back", "compile", "'ag_frame'"),
    (
        "traceback-frame",
        "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame",
        "compile",
        "'__traceback__'",
    ),
    ("tb-frame-direct", "tb = None\ntb.tb_frame.f_locals", "compile", "'tb_frame'"),
    ("frame-back", "frame = None\nframe.f_back.f_builtins", "compile", "'f_back'"),
    ("function-globals", "def f():\n    pass\nf.__globals__", "compile", "'__globals__'"),
    ("lambda-code", "(lambda: 0).__code__.co_code", "compile", "'__code__'"),
    # imports
    ("import-os", "import os", "compile", "import of 'os' is not allowed (allowed: "),
    ("from-os", "from os import path", "compile", "import of 'os' is not allowed"),
    ("import-importlib", "import importlib", "compile", "import of 'importlib'"),
    ("import-operator", "import operator\noperator.attrgetter('x')", "compile", "'operator'"),
    ("import-sys-modules", "import sys\nsys.modules", "compile", "import of 'sys'"),
    ("import-gc", "import gc\ngc.get_objects()", "compile", "import of 'gc'"),
    ("import-builtins", "import builtins", "compile", "import of 'builtins'"),
    ("dunder-import", "__import__('os')", "compile", "name '__import__' is not accessible"),
    ("star-import", "from json import *", "compile", "'from json import *' is not allowed"),
    ("relative-import", "from . import secrets", "compile", "relative imports"),
    ("private-import", "from json import _default_encoder", "compile", "json._default_encoder"),
    # modules reached through an allowed module's attributes
    ("json-codecs", "import json\njson.codecs.open('/etc/passwd')", "run", "module 'codecs'"),
    ("from-json-codecs", "from json import codecs", "run", "module 'codecs'"),
    ("re-enum-sys", "import re\nre.enum.sys.modules", "run", "module 'enum'"),
    ("fractions-operator", "import fractions\nfractions.operator", "run", "module 'operator'"),
    # (statistics.sys exists on 3.11-3.13; datetime.sys, used before, is gone since 3.12)
    ("statistics-sys", "import statistics\nstatistics.sys.modules", "run", "module 'sys'"),
    ("uuid-os", "import uuid\nuuid.os.system('id')", "run", "module 'os'"),
    ("json-decoder", "import json\njson.decoder.scanstring", "run", "module 'json.decoder'"),
    ("injected-module", "os_module.system('id')", "run", "module 'os'"),
    # builtins that run code, read names or touch the outside
    ("builtins-dict", "__builtins__['open']", "compile", "name '__builtins__'"),
    ("eval", "eval('1')", "compile", "eval() is not available"),
    ("exec", "exec('x = 1')", "compile", "exec() is not available"),
    ("eval-alias", "e = eval\ne('1')", "run", "eval() is not available"),
    ("compile", "compile('1', '<x>', 'eval')", "run", "compile() is not available"),
    ("open", "open('/etc/passwd')", "run", "open() is not available"),
    ("getattr", "getattr(1, '__class__')", "run", "getattr() is not available"),
    ("setattr", "setattr(len, 'x', 1)", "run", "setattr() is not available"),
    ("vars", "vars()", "run", "vars() is not available"),
    ("globals", "globals()", "run", "globals() is not available"),
    ("locals", "locals()", "run", "locals() is not available"),
    ("dir", "dir(1)", "run", "dir() is not available"),
    ("breakpoint", "breakpoint()", "compile", "breakpoint"),
    ("input", "input()", "run", "input() is not available"),
    ("memoryview", "memoryview(b'x')", "run", "memoryview() is not available"),
    ("hasattr-dunder", "hasattr(1, '__class__')", "run", "attribute '__class__'"),
    ("reduce-getattr", "import functools\nfunctools.reduce(getattr, ['x'], 1)", "run", "getattr()"),
    # smuggling builtins through decorators, defaults and class bodies
    ("decorator", "@getattr\ndef f():\n    pass", "run", "getattr() is not available"),
    ("default-arg", "def f(g=vars):\n    return g()\nf()", "run", "vars() is not available"),
    ("lambda-default", "(lambda o=open: o('/etc/passwd'))()", "run", "open() is not available"),
    ("class-body-attr", "class A:\n    e = eval\nA.e('1')", "run", "eval() is not available"),
    ("class-dunder-name", "class A:\n    __init_subclass__ = 1", "compile", "'__init_subclass__'"),
    ("metaclass", "class A(metaclass=M):\n    pass", "compile", "metaclass= is not allowed"),
    ("getattribute-method", "class A:\n    def __getattribute__(s, n):\n        pass", "compile",
     "'__getattribute__' is not allowed"),
    ("shadow-hook-arg", "def f(_getattr_):\n    pass", "compile", "argument name '_getattr_'"),
    ("shadow-hook-global", "global _write_\n_write_ = 1", "compile", "global name '_write_'"),
    ("match-class-pattern", "match 1:\n    case object(__class__=c):\n        pass", "compile",
     "'match' is not allowed"),
    ("except-star", "try:\n    pass\nexcept* ValueError:\n    pass", "compile", "'except*'"),
    # writes outside the job's own objects, and process-wide state
    ("module-write", "import math\nmath.pi = 3", "run", "cannot modify module 'math'"),
    ("module-augassign", "import math\nmath.pi += 1", "run", "cannot modify module 'math'"),
    ("host-class-write", "import json\njson.JSONEncoder.indent = 4", "run",
     "cannot modify class 'JSONEncoder'"),
    ("function-attr-write", "def f():\n    pass\nf.x = 1", "run", "cannot modify 'function'"),
    ("update-wrapper-host", "import functools, json\nfunctools.update_wrapper(json.dumps, len)",
     "run", "functools.update_wrapper() may only wrap functions defined by the job"),
    ("wraps-host", "import functools\nfunctools.wraps(len)(len)", "run", "functools.wraps()"),
    ("total-ordering-host", "import functools, fractions\n"
     "functools.total_ordering(fractions.Fraction)", "run", "total_ordering()"),
    ("abc-register", "import fractions\nfractions.Fraction.register(int)", "run",
     "Fraction.register() is not available"),
    ("decimal-setcontext", "import decimal\ndecimal.setcontext(decimal.Context())", "run",
     "decimal.setcontext is not available"),
    ("time-sleep", "import time\ntime.sleep(3600)", "run", "time.sleep is not available"),
    ("from-time-sleep", "from time import sleep", "compile", "time.sleep is not available"),
    ("clock-settime", "import time\ntime.clock_settime(0, 0.0)", "run", "sets the system clock"),
    ("uuid-getnode", "import uuid\nuuid.getnode()", "run", "uuid.getnode is not available"),
    ("print-to-file", "print('x', file=[])", "run", "print(file=...) is not available"),
    ("top-level-await", "await tool()", "compile", "at top level is not supported"),
]
# fmt: on


@pytest.mark.parametrize(
    ("source", "phase", "expected"),
    [pytest.param(source, phase, expected, id=name) for name, source, phase, expected in ESCAPES],
)
def test_escape_is_refused(source: str, phase: str, expected: str) -> None:
    if phase == "compile":
        with pytest.raises(SandboxViolation) as info:
            compile_block(textwrap.dedent(source), POLICY)
    else:
        compile_block(textwrap.dedent(source), POLICY)  # must get past the compiler
        reported: list[SandboxViolation] = []
        with pytest.raises(SandboxViolation) as info:
            run_job(source, reported, os_module=os, make=lambda: None, tool=len)
        assert reported == [info.value], "on_violation must see the violation before it is raised"
    assert expected in str(info.value)


def _module_attributes(allowed: frozenset[str]) -> list[tuple[str, str, str]]:
    """(module, attribute, target module) for every public module-valued attribute of every
    allowed module, on the running Python (the set changes between versions)."""
    found = []
    for name in sorted(allowed):
        module = importlib.import_module(name)
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, types.ModuleType) and not attr.startswith("_"):
                found.append((name, attr, value.__name__))
    return found


def test_every_module_reached_through_an_allowed_one_is_checked() -> None:
    """The property the module cases above sample, on whichever modules this Python has:
    an allowed module's attribute that is a module is handed out only if it is allowed."""
    attributes = _module_attributes(POLICY.allowed_imports)
    refused = [(m, a, t) for m, a, t in attributes if t not in POLICY.allowed_imports]
    assert len(refused) >= 10, f"too few module attributes to test on this Python: {attributes}"
    for module, attr, target in attributes:
        source = f"import {module}\n{module}.{attr}"
        if target in POLICY.allowed_imports:
            run_job(source)
            continue
        reported: list[SandboxViolation] = []
        with pytest.raises(SandboxViolation, match=f"module '{target}'"):
            run_job(source, reported)
        assert len(reported) == 1, source


def test_there_are_enough_distinct_escapes() -> None:
    assert len({source for _, source, _, _ in ESCAPES}) == len(ESCAPES) >= 35


def test_violation_swallowed_by_job_is_still_reported() -> None:
    reported: list[SandboxViolation] = []
    run_job(
        """
        caught = []
        try:
            getattr(1, "real")
        except Exception as exc:
            caught.append(str(exc))
        import json
        try:
            json.codecs
        except Exception:
            pass
        """,
        reported,
    )
    assert len(reported) == 2
    assert str(reported[0]).startswith("getattr() is not available")
    assert "module 'codecs'" in str(reported[1])


def test_violation_inside_job_function_called_later_is_reported() -> None:
    reported: list[SandboxViolation] = []
    namespace = exec_globals(
        POLICY, print_sink=lambda t: None, extra_builtins={}, on_violation=reported.append
    )
    block = compile_block("def sneaky():\n    return vars()\n", POLICY)
    exec(block.statements[0].code, namespace)
    with pytest.raises(SandboxViolation):
        namespace["sneaky"]()  # host code calling a job function later
    assert len(reported) == 1


def test_violation_via_host_callback_is_reported() -> None:
    """The tripwire is called by host code (heapq's key=) that job code called."""
    reported: list[SandboxViolation] = []
    namespace = exec_globals(
        POLICY, print_sink=lambda t: None, extra_builtins={}, on_violation=reported.append
    )
    block = compile_block("import heapq\nheapq.nsmallest(1, [1, 2], key=getattr)", POLICY)
    with pytest.raises(SandboxViolation, match="getattr"):
        for statement in block.statements:
            exec(statement.code, namespace)
    assert len(reported) == 1


def test_without_callback_violations_are_still_raised() -> None:
    namespace = exec_globals(POLICY, print_sink=lambda t: None, extra_builtins={})
    with pytest.raises(SandboxViolation, match="open"):
        exec(compile_block("open('x')", POLICY).statements[0].code, namespace)


# Runtime guards on their own: what the compiler already refuses must be refused again if it
# ever reaches them (e.g. through a caller-provided object or a future transformer change).


@pytest.fixture
def hooks() -> dict[str, Any]:
    return exec_globals(POLICY, print_sink=lambda t: None, extra_builtins={})


@pytest.mark.parametrize("name", ["__class__", "_private", "gi_frame", "format", "mro"])
def test_getattr_hook_refuses_names(hooks: dict[str, Any], name: str) -> None:
    with pytest.raises(SandboxViolation, match=f"attribute '{name}'"):
        hooks["_getattr_"]("text", name)


def test_getattr_hook_refuses_generator_and_frame_internals(hooks: dict[str, Any]) -> None:
    def gen() -> Any:
        yield 1

    generator = gen()
    with pytest.raises(SandboxViolation, match="gi_running"):
        hooks["_getattr_"](generator, "gi_running")
    assert hooks["_getattr_"](generator, "send")(None) == 1
    frame = sys._getframe()
    with pytest.raises(SandboxViolation, match="attributes of frame objects"):
        hooks["_getattr_"](frame, "clear")
    with pytest.raises(SandboxViolation, match="attributes of code objects"):
        hooks["_getattr_"](gen.__code__, "replace")


def test_getattr_hook_wraps_modules_it_hands_out(hooks: dict[str, Any]) -> None:
    view = hooks["_getattr_"](math, "floor")  # a real module from a caller-provided object
    assert view(2.5) == 2
    holder = types.SimpleNamespace(mod=math, bad=sys)
    assert repr(hooks["_getattr_"](holder, "mod")) == "<module 'math' (restricted)>"
    with pytest.raises(SandboxViolation, match="module 'sys'"):
        hooks["_getattr_"](holder, "bad")


def test_write_hook_only_allows_containers_and_job_objects(hooks: dict[str, Any]) -> None:
    assert hooks["_write_"]([]) == []
    assert hooks["_write_"]({"a": 1}) == {"a": 1}
    with pytest.raises(SandboxViolation, match="cannot modify"):
        hooks["_write_"](types.SimpleNamespace())
    with pytest.raises(SandboxViolation, match="cannot modify class 'SandboxPolicy'"):
        hooks["_write_"](SandboxPolicy)


def test_import_hook_refuses_what_the_compiler_would(hooks: dict[str, Any]) -> None:
    guarded_import = hooks["__builtins__"]["__import__"]
    with pytest.raises(SandboxViolation, match="import of 'os' is not allowed"):
        guarded_import("os")
    with pytest.raises(SandboxViolation, match="relative import"):
        guarded_import("json", None, None, ("x",), 1)
    with pytest.raises(SandboxViolation, match=r"import \*"):
        guarded_import("json", None, None, ("*",), 0)
    assert repr(guarded_import("math")) == "<module 'math' (restricted)>"


def test_host_state_is_untouched_after_attempts() -> None:
    pi = math.pi
    for source in ("import math\nmath.pi = 3", "import math\nmath.pi += 1"):
        with pytest.raises(SandboxViolation):
            run_job(source)
    assert math.pi == pi

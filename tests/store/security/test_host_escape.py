"""Host escape: walks to the class hierarchy, frames, format strings, imports, code built from
strings (also inside stdlib helpers) and forged module/qualified names.

Every payload, if it got through, would create the canary file (or exit with "ESCAPED").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.security.conftest import InProcessRunner

#: What a successful walk to os.system would run.
SYSTEM = (
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
    ".__init__.__globals__['system']('touch ' + CANARY)"
)

# fmt: off
CLASS_HIERARCHY = [
    ("tuple-class-bases", "().__class__.__bases__[0].__subclasses__()", "'__class__'"),
    ("str-mro", "''.__class__.__mro__[1].__subclasses__()", "'__class__'"),
    ("list-base", "[].__class__.__base__", "'__class__'"),
    ("object-subclasses", "object.__subclasses__()", "'__subclasses__'"),
    ("int-mro-method", "int.mro()", "'mro'"),
    ("type-builtin", "type(1)", "type() is not available"),
    ("type-three-args", "type('X', (), {})", "type() is not available"),
    ("super-builtin", "super(int, 1)", "super() is not available"),
    ("lambda-globals", "(lambda: 0).__globals__", "'__globals__'"),
    ("print-self", "print.__self__", "'__self__'"),
    ("len-self", "len.__self__", "'__self__'"),
    ("exit-self", "exit.__self__.job", "'__self__'"),
    ("delegate-func", "delegate.__func__", "'__func__'"),
    ("params-class", "params.__class__", "'__class__'"),
    ("class-bases", "class A:\n    pass\nA.__bases__", "'__bases__'"),
    ("class-dict", "class A:\n    pass\nA.__dict__", "'__dict__'"),
    ("init-globals", "class A:\n    def __init__(self):\n        pass\nA.__init__.__globals__",
     "'__init__'"),
    ("vars-object", "vars(object)", "vars() is not available"),
    ("getattr-subclasses", "getattr(object, '__subclasses__')()", "getattr() is not available"),
    ("init-subclass", "object.__init_subclass__", "'__init_subclass__'"),
    ("reduce-ex", "().__reduce_ex__(2)", "'__reduce_ex__'"),
    ("full-walk", SYSTEM, "'__class__'"),
    ("walk-in-function", "def f():\n    return " + SYSTEM + "\nf()", "'__class__'"),
    ("walk-in-lambda-default", "g = lambda x=().__class__: x", "'__class__'"),
]

FRAMES = [
    ("genexp-frame", "g = (i for i in [1])\ng.gi_frame.f_back.f_globals", "'gi_frame'"),
    ("generator-frame", "def gen():\n    yield 1\nx = gen()\nx.gi_frame", "'gi_frame'"),
    ("generator-code", "def gen():\n    yield 1\nx = gen()\nx.gi_code", "'gi_code'"),
    ("generator-yieldfrom", "def gen():\n    yield 1\nx = gen()\nx.gi_yieldfrom", "'gi_yieldfrom'"),
    ("hasattr-gi-frame", "g = (i for i in [1])\nhasattr(g, 'gi_frame')", "'gi_frame'"),
    ("coroutine-def", "async def f():\n    pass", "'async def' is not allowed"),
    ("async-genexp-frame", "a = (i async for i in [])\na.ag_frame", "'ag_frame'"),
    ("async-iter-dunder", "class A:\n    def __aiter__(self):\n        return self", "'__aiter__'"),
    ("traceback-attr", "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame",
     "'__traceback__'"),
    ("with-traceback",
     "try:\n    1 / 0\nexcept Exception as e:\n    e.with_traceback(None).__traceback__",
     "'__traceback__'"),
    ("tb-next", "tb = None\ntb.tb_next", "'tb_next'"),
    ("frame-back", "frame = None\nframe.f_back", "'f_back'"),
    ("frame-locals", "frame = None\nframe.f_locals", "'f_locals'"),
    ("frame-builtins", "frame = None\nframe.f_builtins['open']", "'f_builtins'"),
    ("code-consts", "def f():\n    pass\nf.__code__.co_consts", "'__code__'"),
    ("closure-cell", "def f():\n    x = 1\n    def g():\n        return x\n    return g\n"
     "f().__closure__[0].cell_contents", "'__closure__'"),
    ("exception-context",
     "try:\n    1 / 0\nexcept Exception as e:\n    e.__context__", "'__context__'"),
    ("sys-getframe", "import sys\nsys._getframe()", "import of 'sys'"),
    ("inspect-currentframe", "import inspect\ninspect.currentframe()", "import of 'inspect'"),
    ("traceback-module", "import traceback\ntraceback.extract_stack()", "import of 'traceback'"),
    ("generator-throw-frame", "def gen():\n    yield 1\nx = gen()\nnext(x)\nx.gi_running",
     "'gi_running'"),
]

FORMAT_STRINGS = [
    ("str-format", "'{0.__class__}'.format(1)", "attribute 'format'"),
    ("format-map", "'{x.__globals__}'.format_map({'x': len})", "'format_map'"),
    ("unbound-format", "str.format('{0.__class__}', 1)", "attribute 'format'"),
    ("fstring-dunder", "x = 1\nf'{x.__class__}'", "'__class__'"),
    ("fstring-nested-spec", "x = 1\nf'{x!r:{x.__class__}}'", "'__class__'"),
    ("string-formatter", "import string\nstring.Formatter().format('{0.__class__}', 1)",
     "import of 'string'"),
    ("userstring-format", "import collections\ncollections.UserString('{0.__class__}').format(0)",
     "attribute 'format'"),
    ("map-str-format", "list(map(str.format, ['{0.__class__}'], [1]))", "attribute 'format'"),
    ("getattribute-format", "''.__getattribute__('format')", "'__getattribute__'"),
    ("runtime-built-name",
     "getattr('{0.__class__}', 'for' + 'mat')(1)", "getattr() is not available"),
    ("string-template", "from string import Template", "import of 'string'"),
    ("subclasses-via-format", "'{0.__class__.__bases__[0].__subclasses__}'.format('a')",
     "attribute 'format'"),
]

_FORBIDDEN_MODULES = [
    "os", "sys", "subprocess", "importlib", "builtins", "ctypes", "io", "pathlib", "shutil",
    "socket", "pickle", "marshal", "types", "inspect", "gc", "operator", "typing",
    "dataclasses", "enum", "code", "codecs", "threading", "asyncio", "signal", "tempfile",
    "posix", "pty", "runpy",
]
IMPORTS = [
    *[(f"import-{m}", f"import {m}", f"import of '{m}'") for m in _FORBIDDEN_MODULES],
    ("dunder-import", "__import__('os')", "'__import__'"),
    ("star-import", "from json import *", "import *"),
    ("relative-import", "from . import x", "relative import"),
    ("private-name", "from json import _default_encoder", "json._default_encoder"),
    ("json-codecs", "import json\njson.codecs.open(CANARY, 'w')", "module 'codecs'"),
    ("re-enum-sys", "import re\nre.enum.sys.modules", "module 'enum'"),
    ("statistics-sys", "import statistics\nstatistics.sys.modules", "module 'sys'"),
    ("uuid-os", "import uuid\nuuid.os.system('touch ' + CANARY)", "module 'os'"),
    ("fractions-operator", "import fractions\nfractions.operator.attrgetter('__class__')",
     "module 'operator'"),
    ("random-private-os", "import random\nrandom._os", "'_os'"),
    ("json-decoder", "import json\njson.decoder.scanstring", "module 'json.decoder'"),
    ("from-json-codecs", "from json import codecs", "module 'codecs'"),
    ("uuid-sys", "import uuid\nuuid.sys.modules", "module 'sys'"),
    ("builtins-dict", "__builtins__['open']", "'__builtins__'"),
    ("open-builtin", "open(CANARY, 'w')", "open() is not available"),
    ("breakpoint", "breakpoint()", "breakpoint"),
]

STRING_EVALUATION = [
    ("singledispatch-annotation",
     "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
     "def g(x: \"" + SYSTEM.replace('"', "'") + "\"):\n    pass\nf.register(g)",
     "evaluating a string as code"),
    ("singledispatch-import-annotation",
     "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
     "@f.register\ndef _(x: \"__import__('os').system('touch ' + CANARY)\"):\n    pass",
     "evaluating a string as code"),
    ("singledispatchmethod-annotation",
     "import functools\nclass A:\n    @functools.singledispatchmethod\n    def m(self, x):\n"
     "        pass\n    @m.register\n    def n(self, x: \"open(CANARY, 'w')\"):\n        pass",
     "evaluating a string as code"),
    ("namedtuple-typename-code",
     "import collections\ncollections.namedtuple('x', 'a, b): pass\\nimport os #')",
     "valid identifiers"),
    ("namedtuple-field-code",
     "import collections\ncollections.namedtuple('P', ['a=__import__(\"os\")'])",
     "valid identifiers"),
    ("partial-eval", "import functools\nfunctools.partial(eval, '1')()", "eval() is not available"),
    ("json-parse-int-eval",
     "import json\njson.loads('1', parse_int=eval)", "eval() is not available"),
    ("json-object-hook-exec",
     "import json\njson.loads('{}', object_hook=exec)", "exec() is not available"),
    ("map-eval", "list(map(eval, ['1']))", "eval() is not available"),
    ("sorted-key-compile", "sorted(['1'], key=compile)", "compile() is not available"),
    ("re-sub-eval", "import re\nre.sub('x', eval, 'x')", "eval() is not available"),
    ("reduce-exec",
     "import functools\nfunctools.reduce(exec, ['x=1'], None)", "exec() is not available"),
    ("make-dataclass", "from dataclasses import make_dataclass", "import of 'dataclasses'"),
    ("typing-hints", "import typing\ntyping.get_type_hints(len)", "import of 'typing'"),
    # Python 3.11 refuses to extend the enum, 3.12+ to look the value up: no class either way
    ("enum-functional-api", "import re\nre.RegexFlag('X', 'a b', module='os')",
     ("cannot extend", "is not a valid RegexFlag")),
    ("eval-builtin", "eval('1')", "eval() is not available"),
    ("exec-alias", "e = exec\ne('x = 1')", "exec() is not available"),
]

FORGED_NAMES = [
    ("namedtuple-module-os",
     "import collections\ncollections.namedtuple('system', 'x', module='os')",
     "namedtuple(module=...)"),
    ("namedtuple-module-builtins",
     "from collections import namedtuple\nnamedtuple('eval', 'x', module='builtins')",
     "namedtuple(module=...)"),
    ("wraps-host-function",
     "import functools, math\n@functools.wraps(math.sqrt)\ndef f():\n    pass",
     "copy the names"),
    ("update-wrapper-host", "import functools, json\ndef f():\n    pass\n"
     "functools.update_wrapper(f, json.loads)", "copy the names"),
    ("wraps-print", "import functools\nfunctools.wraps(print)", "copy the names"),
    ("update-wrapper-on-host", "import functools, json\ndef f():\n    pass\n"
     "functools.update_wrapper(json.loads, f)", "functions defined by the job"),
    ("class-body-module", "class system:\n    __module__ = 'os'", "'__module__'"),
    ("qualname-write", "class A:\n    pass\nA.__qualname__ = 'system'", "'__qualname__'"),
    ("wait-for-job-function", "def ready():\n    return True\nwait_for(ready).value",
     "functions the job defines"),
    ("wait-for-exit", "wait_for(exit).value", "wait_for() cannot use"),
    ("wait-for-job-random",
     "import random\nwait_for(random.random).value", "wait_for() cannot use"),
    ("wait-for-sleep", "import time\nwait_for(time.sleep, 100).value", "time.sleep"),
    ("wait-for-wrapped", "import functools\ndef f():\n    return True\n"
     "g = functools.lru_cache(f)\nwait_for(g).value", "wait_for() cannot use"),
    ("wait-for-print", "wait_for(print, 'x').value", "wait_for() cannot use"),
    # dbzero cannot store a built-in function: it failed with dbzero's "Unsupported
    # attribute type" instead of saying why
    ("wait-for-builtin", "import math\nwait_for(math.isfinite, 1.0).value",
     "math.isfinite is not a function written in Python"),
]

#: Escapes published against similar in-process sandboxes, each named by where it was
#: reported (public issue and pull-request threads), re-played here against statek.
PUBLISHED = [
    # simpleeval issue 138: a generator method's frame leads to the host's builtins
    ("simpleeval-138-generator-frame",
     "def bar():\n    yield 'x'\nbar().gi_frame.f_globals['__builtins__']", "'gi_frame'"),
    ("simpleeval-138-coroutine-frame",
     "async def bar():\n    return 1\nbar().cr_frame", "async"),
    # smolagents PR 2271: str.format field paths walk dunders in C, past attribute guards
    ("smolagents-2271-format-field-path",
     "'{0.__class__.__bases__[0].__subclasses__}'.format('a')", "attribute 'format'"),
    ("smolagents-2271-format-map",
     "'{x.__class__}'.format_map({'x': 1})", "attribute 'format_map'"),
    # crewAI PR 4643: type.__dict__ with a name built by chr() reaches __subclasses__
    ("crewai-4643-type-dict-chr",
     "type.__dict__[chr(95) * 2 + 'subclasses' + chr(95) * 2](object)", "'__dict__'"),
    ("crewai-4643-vars-type", "vars(type)", "vars"),
    # RestrictedPython: `except*` handlers were not checked like `except` ones
    ("restrictedpython-except-star",
     "try:\n    pass\nexcept* ValueError as group:\n    group.exceptions", "except*"),
    # grist-core PR 2353: reflection through type() and getattr() to the class hierarchy
    ("grist-2353-type-bases", "type(1).mro()", "'mro'"),
    ("grist-2353-getattr-string", "getattr(1, '__cla' + 'ss__')", "getattr() is not available"),
]
# fmt: on

CASES = [
    *(pytest.param(s, e, id=f"hierarchy-{i}") for i, s, e in CLASS_HIERARCHY),
    *(pytest.param(s, e, id=f"frames-{i}") for i, s, e in FRAMES),
    *(pytest.param(s, e, id=f"format-{i}") for i, s, e in FORMAT_STRINGS),
    *(pytest.param(s, e, id=f"imports-{i}") for i, s, e in IMPORTS),
    *(pytest.param(s, e, id=f"string-eval-{i}") for i, s, e in STRING_EVALUATION),
    *(pytest.param(s, e, id=f"forged-{i}") for i, s, e in FORGED_NAMES),
    *(pytest.param(s, e, id=f"published-{i}") for i, s, e in PUBLISHED),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
async def test_host_escape_is_refused(runner: InProcessRunner, canary: Path, source: str,
                                      expected: str | tuple[str, ...]) -> None:
    code = f"CANARY = {str(canary)!r}\n{source}\nexit('ESCAPED')"
    attempt = await runner.run(code)
    attempt.refused(*((expected,) if isinstance(expected, str) else expected))


async def test_refused_even_when_job_code_catches_it(runner: InProcessRunner,
                                                     canary: Path) -> None:
    """A violation raised inside a library helper is recorded although job code swallows it."""
    code = (f"CANARY = {str(canary)!r}\nimport functools\n@functools.singledispatch\n"
            "def f(x):\n    pass\ntry:\n    @f.register\n"
            "    def _(x: \"open(CANARY, 'w')\"):\n        pass\nexcept Exception:\n    pass\n"
            "exit('swallowed')")
    attempt = await runner.run(code)
    assert attempt.exit_status == "swallowed"
    assert "refused: evaluating a string as code" in attempt.console


async def test_forged_class_is_never_stored_by_its_name(runner: InProcessRunner) -> None:
    """A class of the job's own is kept as text: reading the result imports nothing."""
    attempt = await runner.run("import collections\nP = collections.namedtuple('system', 'x')\n"
                               "exit(P)")
    assert isinstance(attempt.exit_status, str) and "__statek_job__" in attempt.exit_status
    assert "cannot be stored" in attempt.console


# fmt: off
STILL_WORKS = [
    ("namedtuple", "import collections\nP = collections.namedtuple('P', 'x y', defaults=[0])\n"
     "exit(list(P(1)))", [1, 0]),
    ("singledispatch-class-annotation",
     "import functools\n@functools.singledispatch\ndef f(x):\n    return 'any'\n"
     "@f.register\ndef _(x: int):\n    return 'int'\nexit([f(1), f('a')])", ["int", "any"]),
    ("wraps-job-function", "import functools\ndef deco(fn):\n    @functools.wraps(fn)\n"
     "    def inner(*a):\n        return fn(*a) + 1\n    return inner\n@deco\ndef g(x):\n"
     "    return x\nexit(g(1))", 2),
    ("strptime-lazy-import", "import datetime\n"
     "exit(datetime.datetime.strptime('2020-02-03', '%Y-%m-%d').day)", 3),
    ("random-per-job", "import random\nrandom.seed(5)\nx = random.randint(1, 6)\n"
     "exit(1 <= x <= 6)", True),
    ("decimal-context", "import decimal\ndecimal.getcontext().prec = 4\n"
     "exit(str(decimal.Decimal(1) / decimal.Decimal(3)))", "0.3333"),
    ("decimal-localcontext", "import decimal\nwith decimal.localcontext() as c:\n"
     "    c.prec = 2\n    v = str(decimal.Decimal(2) / 3)\nexit(v)", "0.67"),
    ("wait-for-allowed-function", "import json\nexit(wait_for(json.loads, 'true').value)", True),
    ("uuid4-json-re", "import uuid, json, re\nexit([len(str(uuid.uuid4())), json.loads('[1]'),"
     " bool(re.match('a+', 'aa'))])", [36, [1], True]),
    ("lru-cache", "import functools\n@functools.lru_cache\ndef sq(x):\n    return x * x\n"
     "exit(sq(4))", 16),
]
# fmt: on


@pytest.mark.parametrize(("source", "expected"), [pytest.param(s, e, id=i)
                                                  for i, s, e in STILL_WORKS])
async def test_ordinary_code_still_works(runner: InProcessRunner, source: str,
                                         expected: object) -> None:
    attempt = await runner.run(source)
    assert attempt.error is None, attempt.text
    status = attempt.exit_status
    assert (list(status) if isinstance(expected, list) else status) == expected

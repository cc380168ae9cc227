"""Ordinary job code runs in the sandbox, statement by statement, with print captured."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from statek.errors import SandboxViolation
from statek.sandbox import (
    CompiledBlock,
    ModuleView,
    SandboxPolicy,
    compile_block,
    exec_globals,
    is_internal_name,
    module_view_name,
)

RESTRICTED = SandboxPolicy()
UNRESTRICTED = SandboxPolicy(restricted=False)
BOTH = pytest.mark.parametrize("policy", [RESTRICTED, UNRESTRICTED], ids=["restricted", "open"])


@dataclass
class Run:
    namespace: dict[str, Any]
    printed: list[str] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.printed)

    def user_locals(self) -> dict[str, Any]:
        return {k: v for k, v in self.namespace.items() if not is_internal_name(k)}


def new_run(policy: SandboxPolicy, extra: Mapping[str, Any] | None = None) -> Run:
    printed: list[str] = []
    namespace = exec_globals(policy, print_sink=printed.append, extra_builtins=extra or {})
    return Run(namespace, printed)


def execute(block: CompiledBlock, run: Run, start: int = 0, stop: int | None = None) -> Run:
    """What the job runner does: exec each statement, echo non-None expression values."""
    for statement in block.statements[start:stop]:
        if statement.echo:
            value = eval(statement.code, run.namespace)
            if value is not None:
                run.echoed.append(repr(value))
        else:
            exec(statement.code, run.namespace)
    return run


def run_source(source: str, policy: SandboxPolicy = RESTRICTED, **extra: Any) -> Run:
    block = compile_block(textwrap.dedent(source), policy)
    return execute(block, new_run(policy, extra))


# --- ordinary code ---------------------------------------------------------------------------


@BOTH
def test_arithmetic_and_names(policy: SandboxPolicy) -> None:
    run = run_source("a = 7\nb = a * 6 - 2 ** 3 // 4 % 5\nc = divmod(b, 5)\n", policy)
    assert run.user_locals() == {"a": 7, "b": 40, "c": (8, 0)}


@BOTH
def test_comprehensions_and_generators(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        squares = [i * i for i in range(5) if i % 2 == 0]
        table = {k: v for k, v in zip("abc", range(3))}
        uniq = {c for c in "hello"}
        total = sum(x for x in range(10))
        pairs = [(i, j) for i in range(3) for j in range(i)]
        def gen(n):
            for i in range(n):
                yield i * 10
        got = list(gen(3))
        it = iter([1, 2])
        first = next(it)
        """,
        policy,
    )
    ns = run.namespace
    assert ns["squares"] == [0, 4, 16]
    assert ns["table"] == {"a": 0, "b": 1, "c": 2}
    assert ns["uniq"] == set("hello")
    assert ns["total"] == 45
    assert ns["pairs"] == [(1, 0), (2, 0), (2, 1)]
    assert ns["got"] == [0, 10, 20]
    assert ns["first"] == 1


@BOTH
def test_functions_closures_and_unpacking(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        def add(a, b=2, *rest, scale=1, **opts):
            return (a + b + sum(rest)) * scale + len(opts)
        def counter():
            count = 0
            def bump():
                nonlocal count
                count += 1
                return count
            return bump
        bump = counter()
        bump()
        calls = bump()
        args = [1, 2, 3]
        kwargs = {"scale": 10, "extra": True}
        r1 = add(1)
        r2 = add(*args, **kwargs)
        a, (b, c), *rest = 1, (2, 3), 4, 5
        for i, (x, y) in enumerate([(1, 2), (3, 4)]):
            last = (i, x, y)
        square = lambda v: v * v
        mapped = list(map(square, [1, 2, 3]))
        ordered = sorted(["bb", "a", "ccc"], key=len, reverse=True)
        """,
        policy,
    )
    ns = run.namespace
    assert (ns["calls"], ns["r1"], ns["r2"]) == (2, 3, 61)
    assert (ns["a"], ns["b"], ns["c"], ns["rest"], ns["last"]) == (1, 2, 3, [4, 5], (1, 3, 4))
    assert ns["mapped"] == [1, 4, 9]
    assert ns["ordered"] == ["ccc", "bb", "a"]


@BOTH
def test_simple_classes(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        class Account:
            kind = "basic"
            def __init__(self, owner, balance=0):
                self.owner = owner
                self.balance = balance
                self.history = []
            def deposit(self, amount):
                self.balance += amount
                self.history.append(amount)
                return self
            def __repr__(self):
                return f"Account({self.owner!r}, {self.balance})"
            def __eq__(self, other):
                return isinstance(other, Account) and other.balance == self.balance
            def __hash__(self):
                return hash(self.balance)
            @property
            def rich(self):
                return self.balance > 100
            @staticmethod
            def fee():
                return 1
            @classmethod
            def empty(cls):
                return cls("nobody")
        class Savings(Account):
            kind = "savings"
        acct = Savings("ann").deposit(70).deposit(50)
        Account.kind = "standard"
        counts = {}
        counts["x"] = 1
        counts["x"] += 2
        acct.history[0] -= 5
        text = repr(acct)
        same = acct == Savings("bob", 120)
        summary = (acct.rich, acct.fee(), Account.empty().owner, Account.kind, acct.kind)
        class Oops(Exception):
            pass
        """,
        policy,
    )
    ns = run.namespace
    assert ns["text"] == "Account('ann', 120)"
    assert ns["same"] is True
    assert ns["summary"] == (True, 1, "nobody", "standard", "savings")
    assert ns["counts"] == {"x": 3}
    assert ns["acct"].history == [65, 50]
    assert issubclass(ns["Oops"], Exception)


@BOTH
def test_try_except_finally_and_raise(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        log = []
        class Problem(ValueError):
            pass
        try:
            raise Problem("bad")
        except KeyError:
            log.append("key")
        except ValueError as err:
            log.append(f"value:{err}")
            log.append(err.args)
        else:
            log.append("else")
        finally:
            log.append("finally")
        try:
            {}["missing"]
        except LookupError:
            log.append("lookup")
        try:
            1 / 0
        except Exception as e:
            log.append(isinstance(e, ZeroDivisionError))
        """,
        policy,
    )
    assert run.namespace["log"] == ["value:bad", ("bad",), "finally", "lookup", True]
    assert "err" not in run.namespace  # Python unbinds except-as names after the handler


@BOTH
def test_fstrings_and_string_methods(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        name, value = "pi", 3.14159
        s = f"{name.upper()}={value:.2f} {value!r:>10} {[1, 2]}"
        joined = ", ".join(sorted({"b", "a"}))
        pct = "%s-%05.1f" % ("x", 2.5)
        formatted = format(255, "08b")
        """,
        policy,
    )
    ns = run.namespace
    assert ns["s"] == "PI=3.14    3.14159 [1, 2]"
    assert (ns["joined"], ns["pct"], ns["formatted"]) == ("a, b", "x-002.5", "11111111")


def test_allowed_imports_work() -> None:
    run = run_source(
        """
        import math, json, re, statistics, heapq, bisect, textwrap, time, uuid
        import itertools as it
        from collections import Counter, defaultdict, deque, namedtuple
        from functools import reduce, lru_cache, partial
        from datetime import date, timedelta
        from decimal import Decimal, localcontext
        from fractions import Fraction
        import random
        root = math.sqrt(16)
        data = json.loads(json.dumps({"a": [1, 2]}))
        words = re.findall(r"\\w+", "hi there")
        mean = statistics.mean([1, 2, 3])
        top = heapq.nlargest(2, [5, 1, 9])
        pos = bisect.bisect([1, 3, 5], 4)
        short = textwrap.shorten("a b c d e f", width=7)
        now = time.time() > 0
        uid = len(str(uuid.uuid4()))
        combos = list(it.combinations("abc", 2))
        counts = Counter("aab").most_common(1)
        dd = defaultdict(list)
        dd["k"].append(1)
        P = namedtuple("P", "x y")
        prod = reduce(lambda a, b: a * b, [1, 2, 3, 4])
        @lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        fibs = fib(20)
        later = date(2024, 1, 31) + timedelta(days=1)
        with localcontext(prec=5):
            third = Decimal(1) / Decimal(3)
        half = Fraction(1, 2) + Fraction(1, 3)
        rng = random.Random(42)
        roll = 1 <= rng.randint(1, 6) <= 6
        queue = deque([1, 2])
        queue.appendleft(0)
        """
    )
    ns = run.namespace
    assert ns["root"] == 4.0
    assert ns["data"] == {"a": [1, 2]}
    assert ns["words"] == ["hi", "there"]
    assert (ns["mean"], ns["top"], ns["pos"]) == (2, [9, 5], 2)
    assert ns["short"] == "a [...]"
    assert ns["now"] is True and ns["uid"] == 36 and ns["roll"] is True
    assert ns["combos"] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert ns["counts"] == [("a", 2)]
    assert dict(ns["dd"]) == {"k": [1]}
    assert ns["P"](1, 2).x == 1
    assert (ns["prod"], ns["fibs"]) == (24, 6765)
    assert str(ns["later"]) == "2024-02-01"
    assert str(ns["third"]) == "0.33333"
    assert str(ns["half"]) == "5/6"
    assert list(ns["queue"]) == [0, 1, 2]


def test_imports_bind_read_only_module_views() -> None:
    run = run_source("import math\nfrom collections import Counter\n")
    view = run.namespace["math"]
    assert isinstance(view, ModuleView)
    assert module_view_name(view) == "math"
    assert repr(view) == "<module 'math' (restricted)>"
    assert module_view_name(42) is None
    assert "sqrt" in dir(view)
    assert run.namespace["Counter"].__name__ == "Counter"  # names come through unwrapped


def test_functools_helpers_work_on_job_objects() -> None:
    run = run_source(
        """
        import functools
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args) + 1
            return wrapper
        @deco
        def base(x):
            "Doc."
            return x
        result = base(1)
        @functools.total_ordering
        class Version:
            def __init__(self, n):
                self.n = n
            def __eq__(self, other):
                return self.n == other.n
            def __lt__(self, other):
                return self.n < other.n
        ge = Version(3) >= Version(2)
        """
    )
    assert run.namespace["result"] == 2
    assert run.namespace["base"].__name__ == "base"
    assert run.namespace["base"].__doc__ == "Doc."
    assert run.namespace["ge"] is True


def test_names_of_forbidden_builtins_can_be_job_variables() -> None:
    run = run_source(
        """
        type = "invoice"
        def describe(input, dir="up"):
            return f"{input}/{dir}"
        vars = [type, describe("x")]
        """
    )
    assert run.namespace["vars"] == ["invoice", "x/up"]


def test_hasattr_on_public_names() -> None:
    run = run_source("a = hasattr([], 'append')\nb = hasattr(1, 'nope')\n")
    assert (run.namespace["a"], run.namespace["b"]) == (True, False)


# --- print and echo --------------------------------------------------------------------------


@BOTH
def test_print_goes_to_the_sink_one_string_per_call(policy: SandboxPolicy) -> None:
    run = run_source(
        """
        print("a", 1, [2])
        print()
        print("x", "y", sep="-", end="!")
        print("p", "q", sep=None, end=None)
        print(*["m", "n"], sep="")
        def helper():
            print("from function")
        helper()
        """,
        policy,
    )
    assert run.printed == ["a 1 [2]\n", "\n", "x-y!", "p q\n", "mn\n", "from function\n"]


@BOTH
def test_print_rejects_bad_sep_like_the_builtin(policy: SandboxPolicy) -> None:
    with pytest.raises(TypeError, match="sep must be None or a string, not int"):
        run_source("print('a', sep=1)", policy)
    with pytest.raises(TypeError, match="end must be None or a string, not list"):
        run_source("print('a', end=[])", policy)


def test_print_never_touches_the_process_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    run_source("print('quiet')")
    run_source("print('quiet')", UNRESTRICTED)
    assert capsys.readouterr().out == ""


def test_unrestricted_print_can_still_target_a_file() -> None:
    import io

    target = io.StringIO()
    run = run_source("print('to file', file=target)", UNRESTRICTED, target=target)
    assert target.getvalue() == "to file\n"
    assert run.printed == []


@BOTH
def test_echo_statements(policy: SandboxPolicy) -> None:
    block = compile_block("x = 2\nx * 21\nprint('hi')\nNone\n'text'\n[x]\n", policy)
    assert [s.echo for s in block.statements] == [False, True, True, True, True, True]
    run = execute(block, new_run(policy))
    assert run.echoed == ["42", "'text'", "[2]"]
    assert run.printed == ["hi\n"]


def test_echo_of_walrus_binds_the_name() -> None:
    run = run_source("(n := 10)\n")
    assert run.echoed == ["10"]
    assert run.namespace["n"] == 10


# --- statement by statement ------------------------------------------------------------------


@BOTH
def test_resume_at_statement_k_with_persisted_names(policy: SandboxPolicy) -> None:
    source = textwrap.dedent(
        """
        total = 0
        items = [1, 2, 3]
        for item in items:
            total += item
        checkpoint = total * 2
        print("resumed", checkpoint)
        final = checkpoint + len(items)
        """
    )
    block = compile_block(source, policy)
    first = execute(block, new_run(policy), stop=3)
    saved = first.user_locals()
    assert saved == {"total": 6, "items": [1, 2, 3], "item": 3}
    assert first.printed == []

    second = new_run(policy)
    second.namespace.update(saved)  # e.g. after a restart, from persisted job locals
    execute(block, second, start=3)
    assert second.printed == ["resumed 12\n"]
    assert second.namespace["final"] == 15


def test_statements_run_one_at_a_time() -> None:
    block = compile_block("a = 1\nb = a + 1\nc = b + 1\n", RESTRICTED)
    run = new_run(RESTRICTED)
    seen = []
    for statement in block.statements:
        exec(statement.code, run.namespace)
        seen.append(sorted(run.user_locals()))
    assert seen == [["a"], ["a", "b"], ["a", "b", "c"]]


def test_exception_stops_at_the_failing_statement() -> None:
    block = compile_block("a = 1\nb = 1 / 0\nc = 3\n", RESTRICTED)
    run = new_run(RESTRICTED)
    with pytest.raises(ZeroDivisionError) as info:
        execute(block, run)
    assert "c" not in run.namespace
    assert info.traceback[-1].lineno + 1 == 2  # pytest line numbers are 0-based


@pytest.mark.parametrize(
    ("source", "assigned", "deleted"),
    [
        ("x = 1", ("x",), ()),
        ("a = b = 2", ("a", "b"), ()),
        ("a, (b, *c) = 1, (2, 3)", ("a", "b", "c"), ()),
        ("n += 1", ("n",), ()),
        ("n: int = 1", ("n",), ()),
        ("n: int", (), ()),
        ("obj.attr = 1", (), ()),
        ("d['k'] = 1", (), ()),
        ("for i, j in pairs:\n    acc = i", ("i", "j", "acc"), ()),
        ("while go:\n    step = 1", ("step",), ()),
        ("with ctx() as (f, g):\n    inner = f", ("f", "g", "inner"), ()),
        ("try:\n    t = 1\nexcept E as err:\n    h = 2", ("t", "err", "h"), ()),
        ("if c:\n    yes = 1\nelse:\n    no = 2", ("yes", "no"), ()),
        ("import math", ("math",), ()),
        ("import os.path", ("os",), ()),
        ("import json as j, re", ("j", "re"), ()),
        ("from collections import Counter, deque as dq", ("Counter", "dq"), ()),
        ("def f(a, b=(d := 1)):\n    local = a\n    global g\n    g = 1", ("f", "d"), ()),
        ("@deco\nclass K(Base):\n    attr = 1\n    def m(self): pass", ("K",), ()),
        ("lam = lambda q: (w := q)", ("lam",), ()),
        ("sq = [v * v for v in data]", ("sq",), ()),
        ("hits = [y for v in data if (y := v)]", ("hits", "y"), ()),
        ("g = (k for k in ks)", ("g",), ()),
        ("print(z := 5)", ("z",), ()),
        ("del x", (), ("x",)),
        ("del a, (b, c), d[0], e.f", (), ("a", "b", "c")),
        ("for i in r:\n    del tmp", ("i",), ("tmp",)),
        ("x = 1; y = 2", ("x",), ()),
    ],
)
def test_assigned_and_deleted_analysis(
    source: str, assigned: tuple[str, ...], deleted: tuple[str, ...]
) -> None:
    statement = compile_block(source, UNRESTRICTED).statements[0]
    assert (statement.assigned, statement.deleted) == (assigned, deleted)


def test_match_capture_names_are_assigned_when_unrestricted() -> None:
    source = textwrap.dedent(
        """
        match v:
            case [first, *others]:
                pass
            case {'k': kv, **more}:
                pass
            case Point(x=px) as whole:
                pass
        """
    )
    statement = compile_block(source, UNRESTRICTED).statements[0]
    assert set(statement.assigned) == {"first", "others", "kv", "more", "px", "whole"}


# --- namespaces ------------------------------------------------------------------------------


def test_extra_builtins_are_available_and_win() -> None:
    calls: list[str] = []

    def tool(text: str) -> str:
        calls.append(text)
        return text.upper()

    def fake_len(obj: object) -> int:
        return -1

    run = run_source("out = search('q')\nn = len('abc')\n", search=tool, len=fake_len)
    assert (run.namespace["out"], run.namespace["n"], calls) == ("Q", -1, ["q"])
    assert "search" not in run.user_locals()


def test_job_can_shadow_an_extra_builtin_without_losing_it() -> None:
    run = run_source("search = 'mine'\n", search=len)
    assert run.user_locals() == {"search": "mine"}
    assert run.namespace["__builtins__"]["search"] is len


@BOTH
def test_exec_globals_returns_independent_namespaces(policy: SandboxPolicy) -> None:
    first: list[str] = []
    second: list[str] = []
    ns1 = exec_globals(policy, print_sink=first.append, extra_builtins={"tool": 1})
    ns2 = exec_globals(policy, print_sink=second.append, extra_builtins={})
    assert ns1 is not ns2 and ns1["__builtins__"] is not ns2["__builtins__"]
    assert "tool" not in ns2["__builtins__"]
    exec(compile_block("print('one')", policy).statements[0].code, ns1)
    assert (first, second) == (["one\n"], [])


@BOTH
def test_every_sandbox_key_is_internal(policy: SandboxPolicy) -> None:
    namespace = exec_globals(policy, print_sink=print, extra_builtins={"tool": 1})
    assert all(is_internal_name(name) for name in namespace)
    assert not is_internal_name("total")
    assert is_internal_name("_private")


def test_restricted_builtins_are_a_safe_subset() -> None:
    builtins_ = exec_globals(RESTRICTED, print_sink=print, extra_builtins={})["__builtins__"]
    for name in ("open", "eval", "exec", "getattr", "type", "vars", "globals", "compile"):
        assert callable(builtins_[name])  # present, but only as a tripwire
        with pytest.raises(SandboxViolation, match=f"{name}\\(\\) is not available"):
            builtins_[name]()
    for name in ("SystemExit", "KeyboardInterrupt", "exit", "quit", "help_me"):
        assert name not in builtins_


@BOTH
def test_system_and_interpreter_state_untouched(policy: SandboxPolicy) -> None:
    import builtins

    original_print = builtins.print
    run_source("print('x')\nimport math\n", policy)
    assert builtins.print is original_print


# --- unrestricted mode -----------------------------------------------------------------------


def test_unrestricted_mode_runs_anything() -> None:
    run = run_source(
        """
        import os, sys
        sep = os.sep
        klass = ().__class__.__name__
        value = eval("1 + 1")
        t = type(3)
        print(sep, file=sys.stderr) if False else print("ok")
        async def co():
            return 1
        """,
        UNRESTRICTED,
    )
    ns = run.namespace
    assert ns["sep"] == "/" or ns["sep"] == "\\"
    assert (ns["klass"], ns["value"], ns["t"]) == ("tuple", 2, int)
    assert run.printed == ["ok\n"]
    import os

    assert ns["os"] is os  # real modules, no views

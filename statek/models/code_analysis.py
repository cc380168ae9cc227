"""Static facts about warmup code: how it splits into blocks and which outside names it reads."""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Sequence

_CELL_MARKER = re.compile(r"^#\s*%%.*$", re.MULTILINE)
_BUILTIN_NAMES = frozenset(dir(builtins))


def split_blocks(code: str | Sequence[str] | None) -> tuple[str, ...]:
    """Warmup blocks: a sequence is taken as is; a str splits at `# %%` cell markers."""
    if code is None:
        return ()
    parts = _CELL_MARKER.split(code) if isinstance(code, str) else list(code)
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"warmup blocks must be str, not {type(part).__name__}")
    return tuple(p.strip("\n") for p in parts if p.strip())


def checked_blocks(code: str | Sequence[str] | None) -> tuple[str, ...]:
    """`split_blocks`, refusing a block that is not valid Python (ValueError naming the
    block, the line and the problem): a warmup is checked when it is given, not by every
    job that would fail on it."""
    blocks = split_blocks(code)
    for number, block in enumerate(blocks, 1):
        try:
            ast.parse(block)
        except SyntaxError as exc:
            where = f" at line {exc.lineno}" if exc.lineno else ""
            raise ValueError(f"warmup block {number} of {len(blocks)} is not valid Python: "
                             f"{exc.msg}{where}") from None
        except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, deep nesting
            raise ValueError(f"warmup block {number} of {len(blocks)} cannot be compiled: "
                             f"{exc}") from None
    return blocks


class _Scanner:
    """Walks code in evaluation order, noting names read before anything binds them."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.bound: set[str] = set()
        self.found: list[str] = []

    def read(self, name: str) -> None:
        if name not in self.bound and name not in self.known and name not in self.found:
            self.found.append(name)

    def bind(self, target: ast.AST) -> None:
        """Bind assignment targets; subscripts and attributes read their base instead."""
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self.bind(elt)
        elif isinstance(target, ast.Starred):
            self.bind(target.value)
        elif isinstance(target, ast.expr):
            self.expr(target)

    def stmts(self, body: Iterable[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            self.expr(node.value)
            for target in node.targets:
                self.bind(target)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.read(node.target.id)
            self.expr(node.value)
            self.bind(node.target)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.expr(node.value)
            self.bind(node.target)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.bind(node.target)
            self.stmts(node.body)
            self.stmts(node.orelse)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test)
            self.stmts(node.body)
            self.stmts(node.orelse)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars)
            self.stmts(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.stmts(node.body)
            for handler in node.handlers:
                if handler.type is not None:
                    self.expr(handler.type)
                if handler.name:
                    self.bound.add(handler.name)
                self.stmts(handler.body)
            self.stmts(node.orelse)
            self.stmts(node.finalbody)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                if sub is not None:
                    self.expr(sub)
            self.bound.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for sub in [*node.decorator_list, *node.bases]:
                self.expr(sub)
            self.bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                self.bound.add((alias.asname or alias.name).split(".")[0])
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.stmt(child)
                elif isinstance(child, ast.expr):
                    self.expr(child)

    def expr(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.read(node.id)
            else:
                self.bound.add(node.id)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind(node.target)
        elif isinstance(node, ast.Lambda):
            for sub in [*node.args.defaults, *node.args.kw_defaults]:
                if sub is not None:
                    self.expr(sub)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.comprehension(node)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child)
                elif isinstance(child, ast.keyword | ast.comprehension):
                    for grand in ast.iter_child_nodes(child):
                        if isinstance(grand, ast.expr):
                            self.expr(grand)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
                      ) -> None:
        outer = set(self.bound)
        for gen in node.generators:
            self.expr(gen.iter)
            self.bind(gen.target)
            for cond in gen.ifs:
                self.expr(cond)
        if isinstance(node, ast.DictComp):
            self.expr(node.key)
            self.expr(node.value)
        else:
            self.expr(node.elt)
        self.bound = outer  # comprehension variables do not leak


def external_names(blocks: Sequence[str], provided: Iterable[str] = ()) -> tuple[str, ...]:
    """Names the code reads before binding them, minus builtins and `provided` (tools, futures).

    These are the job locals the code expects from outside (shared vars), in first-read order.
    Unparseable code reads nothing we can know; the compile step reports its error later.
    """
    scanner = _Scanner(set(_BUILTIN_NAMES) | set(provided))
    for block in blocks:
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue
        scanner.stmts(tree.body)
    return tuple(scanner.found)


#: Names statek injects into every job's namespace: `JobFunctions.builtins` in the worker and
#: the executor's in isolation="process" define exactly these
#: (tests/store/test_job_function_names.py).
JOB_BUILTINS = (
    "exit", "delegate", "set_budget", "sleep", "sleep_until", "wait_message", "get_all",
    "get_any", "wait_for", "params",
)  # fmt: skip


def event_reader_problem(names: Sequence[str]) -> str | None:
    """Why a supervised agent's warmup reading these outside locals cannot receive an event
    (it must read exactly one: the event is bound to it), or None. One wording for the
    queue's check of a stored agent and the CLI's check before one is made."""
    if len(names) == 1:
        return None
    return (f"must read exactly one outside local (the event is bound to it), it reads "
            f"{len(names)}: {', '.join(names) or 'none'}")

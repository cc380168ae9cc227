"""Compile a block of job source into one code object per top-level statement.

One code object per statement lets the caller run a block a statement at a time, persist
between statements and resume at statement k; each statement also says which module-level
names it binds and deletes, and whether it is a REPL-style echo. Results are cached by
(source, policy), so a warmup shared by many jobs is parsed once.

In restricted mode each statement is checked here (clear, early errors naming the construct
and line), then rewritten by RestrictedPython so attribute access, item writes and iteration
go through the runtime hooks of :mod:`statek.sandbox.guards`.
"""

from __future__ import annotations
import __future__ as future_statements

import ast
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any, Literal, NoReturn

from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

from statek.errors import SandboxViolation
from statek.sandbox.policy import (
    ALLOWED_DUNDER_METHODS,
    DENIED_ATTRIBUTES,
    JOB_FILENAME,
    MODULE_DENIED_ATTRIBUTES,
    SandboxPolicy,
)


@dataclass(frozen=True)
class CompiledStatement:
    """One top-level statement, ready to ``exec`` (or ``eval`` when `echo`)."""

    index: int
    lineno: int
    source: str
    code: CodeType
    echo: bool
    assigned: tuple[str, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True)
class CompiledBlock:
    source: str
    statements: tuple[CompiledStatement, ...]


# --- cache ------------------------------------------------------------------------------------

CACHE_MAX_ENTRIES = 4096
#: Also bounded by total source size, so 4096 maximum-size blocks cannot pin gigabytes.
CACHE_MAX_CHARS = 16_000_000

# LRU keyed by (source, policy number): equal policies share a number (see SandboxPolicy).
# Failures are cached as their message, so a broken warmup shared by many jobs is not
# re-parsed either.
_blocks: OrderedDict[tuple[str, int], CompiledBlock | str] = OrderedDict()
_blocks_chars = 0
_lock = threading.Lock()


def compile_block(source: str, policy: SandboxPolicy) -> CompiledBlock:
    """Compile `source` statement by statement; raises SandboxViolation naming what and where."""
    key = (source, policy._number)
    result = _blocks.get(key)
    if result is None:
        result = _compile_and_store(key, source, policy)
    else:
        try:  # noqa: SIM105 - contextlib.suppress would triple the cost of a hit
            _blocks.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile; the result is still valid
            pass
    if isinstance(result, str):
        raise SandboxViolation(result)
    return result


def _compile_and_store(
    key: tuple[str, int], source: str, policy: SandboxPolicy
) -> CompiledBlock | str:
    global _blocks_chars
    result: CompiledBlock | str
    try:
        result = _compile(source, policy)
    except SandboxViolation as exc:
        result = str(exc)
    with _lock:
        if key not in _blocks:
            _blocks[key] = result
            _blocks_chars += len(source)
            while len(_blocks) > CACHE_MAX_ENTRIES or (
                _blocks_chars > CACHE_MAX_CHARS and len(_blocks) > 1
            ):
                (evicted, _), _ = _blocks.popitem(last=False)
                _blocks_chars -= len(evicted)
    return result


def clear_compile_cache() -> None:
    global _blocks_chars
    with _lock:
        _blocks.clear()
        _blocks_chars = 0


def compile_cache_size() -> int:
    return len(_blocks)


# --- compilation ------------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _fail(node: ast.AST | None, message: str) -> NoReturn:
    lineno = getattr(node, "lineno", None)
    raise SandboxViolation(f"line {lineno}: {message}" if lineno else message)


def _compile(source: str, policy: SandboxPolicy) -> CompiledBlock:
    if not isinstance(source, str):
        raise SandboxViolation(f"job source must be str, not {type(source).__name__}")
    if len(source) > policy.max_source_chars:
        raise SandboxViolation(
            f"source is {len(source)} characters long; the limit is {policy.max_source_chars}"
        )
    lines = _LINE.findall(source)
    tree = _parse(source, lines)
    _check_size(tree, policy.max_ast_nodes)
    future_flags = 0
    statements: list[CompiledStatement] = []
    for index, stmt in enumerate(tree.body):
        future_flags |= _future_flags(stmt, tree.body[:index])
        try:
            statements.append(_compile_statement(index, stmt, lines, policy, future_flags))
        except (RecursionError, MemoryError):
            _fail(stmt, "statement is nested too deeply to compile")
    return CompiledBlock(source, tuple(statements))


def _describe_syntax_error(exc: SyntaxError, lines: list[str]) -> str:
    where = f"line {exc.lineno}" if exc.lineno else "unknown line"
    if exc.offset:
        where += f", column {exc.offset}"
    text = exc.text
    if text is None and exc.lineno and 0 < exc.lineno <= len(lines):
        text = lines[exc.lineno - 1]
    text = (text or "").strip()
    shown = f": {text[:120]}{'...' if len(text) > 120 else ''}" if text else ""
    return f"syntax error at {where}: {exc.msg}{shown}"


def _parse(source: str, lines: list[str]) -> ast.Module:
    try:
        return ast.parse(source, JOB_FILENAME, "exec")
    except SyntaxError as exc:
        raise SandboxViolation(_describe_syntax_error(exc, lines)) from None
    except (RecursionError, MemoryError):
        raise SandboxViolation("source is nested too deeply to parse") from None
    except ValueError as exc:  # e.g. null bytes, on Pythons that do not call it a SyntaxError
        raise SandboxViolation(f"source could not be parsed: {exc}") from None


def _check_size(tree: ast.AST, limit: int) -> None:
    for count, _ in enumerate(ast.walk(tree), 1):
        if count > limit:
            raise SandboxViolation(
                f"code has more than {limit} syntax nodes (max_ast_nodes); split it into "
                "smaller blocks"
            )


def _future_flags(stmt: ast.stmt, before: list[ast.stmt]) -> int:
    """Compiler flags of a ``from __future__`` statement (compiled alone it would lose them
    for the statements after it)."""
    if not (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
        return 0
    docstring = [before[0]] if before and _is_docstring(before[0]) else []
    if any(not _is_future(s) for s in before[len(docstring) :]):
        _fail(stmt, "from __future__ imports must come first in the block")
    flags = 0
    for alias in stmt.names:  # an unknown feature is left for compile() to report
        flags |= getattr(getattr(future_statements, alias.name, None), "compiler_flag", 0)
    return flags


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _is_future(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"


def _segment(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    """Source text between two AST positions (columns are UTF-8 byte offsets)."""
    (line, col), (end_line, end_col) = start, end

    def cut(text: str, a: int | None, b: int | None) -> str:
        return text.encode("utf-8", "surrogatepass")[a:b].decode("utf-8", "surrogatepass")

    if line == end_line:
        return cut(lines[line - 1], col, end_col)
    middle = "".join(lines[line : end_line - 1])
    return cut(lines[line - 1], col, None) + middle + cut(lines[end_line - 1], None, end_col)


def _compile_statement(
    index: int, stmt: ast.stmt, lines: list[str], policy: SandboxPolicy, flags: int
) -> CompiledStatement:
    decorators = getattr(stmt, "decorator_list", None)
    start = (decorators[0].lineno, 0) if decorators else (stmt.lineno, stmt.col_offset)
    end = (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    text = _segment(lines, start, end)
    assigned, deleted = _bindings(stmt)
    _check_await(stmt)
    echo = isinstance(stmt, ast.Expr)
    if policy.restricted:
        _RestrictedChecker(policy.allowed_imports).visit(stmt)
    tree: ast.Module | ast.Expression
    if isinstance(stmt, ast.Expr):
        tree = ast.Expression(body=stmt.value)
    else:
        tree = ast.Module(body=[stmt], type_ignores=[])
    if policy.restricted:
        tree = _restrict(tree)
    mode: Literal["eval", "exec"] = "eval" if echo else "exec"
    try:
        code = compile(tree, JOB_FILENAME, mode, flags=flags, dont_inherit=True)
    except SyntaxError as exc:
        raise SandboxViolation(_describe_syntax_error(exc, lines)) from None
    except ValueError as exc:
        _fail(stmt, f"statement could not be compiled: {exc}")
    return CompiledStatement(index, start[0], text, code, echo, assigned, deleted)


# --- module-level bindings --------------------------------------------------------------------

_Scope = dict[str, None]  # an ordered set


def _bindings(stmt: ast.stmt) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names a top-level statement binds and deletes in the module namespace.

    Function, lambda and class bodies are skipped (their own scopes), and so are comprehension
    targets; walrus targets inside comprehensions do count, as Python binds them outside.
    """
    assigned: _Scope = {}
    deleted: _Scope = {}
    _collect(stmt, assigned, deleted)
    return tuple(assigned), tuple(deleted)


def _function_header(args: ast.arguments) -> list[ast.expr]:
    """The parts of a signature evaluated in the enclosing scope."""
    exprs: list[ast.expr] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    exprs.extend(a.annotation for a in every if a is not None and a.annotation is not None)
    return exprs


def _collect(node: ast.AST, assigned: _Scope, deleted: _Scope) -> None:
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Store):
            assigned[node.id] = None
        elif isinstance(node.ctx, ast.Del):
            deleted[node.id] = None
        return
    children: list[Any]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        assigned[node.name] = None
        children = [*node.decorator_list, *_function_header(node.args), node.returns]
    elif isinstance(node, ast.ClassDef):
        assigned[node.name] = None
        children = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    elif isinstance(node, ast.Lambda):
        children = _function_header(node.args)
    elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        _collect(node.generators[0].iter, assigned, deleted)
        _collect_walrus(node, assigned)
        return
    elif isinstance(node, ast.AnnAssign) and node.value is None:
        return  # `x: int` alone binds nothing
    else:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    assigned[alias.asname or alias.name.partition(".")[0]] = None
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            assigned[node.name] = None
        elif isinstance(node, ast.MatchMapping) and node.rest:
            assigned[node.rest] = None
        children = list(ast.iter_child_nodes(node))
    for child in children:
        if child is not None:
            _collect(child, assigned, deleted)


def _collect_walrus(node: ast.AST, assigned: _Scope) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
            assigned[child.target.id] = None
        _collect_walrus(child, assigned)


# --- checks ---------------------------------------------------------------------------------


def _check_await(stmt: ast.stmt) -> None:
    """Job code calls async tools through sync wrappers; say so instead of a bare SyntaxError."""

    def visit(node: ast.AST, in_async: bool, top: bool) -> None:
        # (async generator expressions are fine anywhere: they only build an object)
        is_async_comp = isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp) and any(
            g.is_async for g in node.generators
        )
        is_await = isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith) or is_async_comp
        if is_await and not in_async:
            where = "at top level" if top else "outside an async function"
            _fail(
                node,
                f"'await' (or async for/with) {where} is not supported: job code calls "
                "tools synchronously, without await",
            )
        if isinstance(node, ast.AsyncFunctionDef):
            in_async, top = True, False
        elif isinstance(node, ast.FunctionDef | ast.Lambda | ast.ClassDef):
            in_async, top = False, False
        for child in ast.iter_child_nodes(node):
            visit(child, in_async, top)

    visit(stmt, False, True)


def _is_private(name: str) -> bool:
    return name.startswith("_") and name != "_"


class _RestrictedChecker(ast.NodeVisitor):
    """Refuses, with a message naming construct and line, what restricted mode forbids.

    RestrictedPython checks most of this too; checking first gives uniform, precise messages.
    """

    def __init__(self, allowed_imports: frozenset[str]) -> None:
        self._allowed = allowed_imports
        self._in_class = False

    def _check_binding(self, node: ast.AST, name: str | None, what: str) -> None:
        if name is not None and _is_private(name):
            reason = "names starting with '_' are reserved"
            _fail(node, f"{what} {name!r} is not allowed in restricted mode ({reason})")

    def _check_module(self, node: ast.AST, name: str) -> None:
        if name not in self._allowed:
            allowed = ", ".join(sorted(self._allowed)) or "none"
            _fail(node, f"import of {name!r} is not allowed (allowed: {allowed})")

    def visit_Name(self, node: ast.Name) -> None:
        if _is_private(node.id):
            _fail(node, f"name {node.id!r} is not accessible in restricted mode")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)  # inner first: report `a.__x__.__y__` at `__x__`
        if node.attr.startswith("_"):
            _fail(node, f"attribute {node.attr!r} is not accessible in restricted mode")
        if node.attr in ("format", "format_map"):
            reason = "format strings can reach attributes; use an f-string"
            _fail(node, f"attribute {node.attr!r} is not accessible in restricted mode ({reason})")
        if node.attr in DENIED_ATTRIBUTES:
            _fail(node, f"attribute {node.attr!r} is not accessible in restricted mode")

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
            _fail(node, f"{node.func.id}() is not available in restricted mode")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            self._check_binding(node, alias.asname, "import alias")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            _fail(node, "relative imports are not allowed in restricted mode")
        if module != "__future__":
            self._check_module(node, module)
        for alias in node.names:
            if alias.name == "*":
                _fail(node, f"'from {module} import *' is not allowed in restricted mode")
            if alias.name.startswith("_"):
                _fail(node, f"importing {module}.{alias.name} is not allowed in restricted mode")
            reason = MODULE_DENIED_ATTRIBUTES.get(module, {}).get(alias.name)
            if reason is None and alias.name in DENIED_ATTRIBUTES:
                reason = "it is on the deny-list"
            if reason is not None:
                _fail(node, f"{module}.{alias.name} is not available in restricted mode: {reason}")
            self._check_binding(node, alias.asname, "import alias")

    def _visit_scope(self, nodes: list[ast.stmt], in_class: bool) -> None:
        outer, self._in_class = self._in_class, in_class
        try:
            for child in nodes:
                self.visit(child)
        finally:
            self._in_class = outer

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        if _is_private(name) and not (self._in_class and name in ALLOWED_DUNDER_METHODS):
            where = "as a method" if self._in_class else "outside a class body"
            _fail(node, f"function name {name!r} is not allowed {where} in restricted mode")
        for header in [*node.decorator_list, node.args, node.returns]:
            if header is not None:
                self.visit(header)
        self._visit_scope(node.body, in_class=False)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        reason = "coroutines carry frames; job code calls tools synchronously"
        _fail(node, f"'async def' is not allowed in restricted mode ({reason})")

    def visit_Match(self, node: ast.Match) -> None:
        reason = "class patterns read attributes without the guard"
        _fail(node, f"'match' is not allowed in restricted mode ({reason})")

    def visit_TryStar(self, node: ast.TryStar) -> None:
        _fail(node, "'except*' is not allowed in restricted mode")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_binding(node, node.name, "class name")
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                _fail(node, "metaclass= is not allowed in restricted mode")
            # RestrictedPython would silently drop them.
            _fail(node, "class keyword arguments are not supported in restricted mode")
        for header in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(header)
        self._visit_scope(node.body, in_class=True)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_binding(node, node.arg, "argument name")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None and node.arg.startswith("__"):
            _fail(node, f"keyword argument {node.arg!r} is not allowed in restricted mode")
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._check_binding(node, node.name, "exception name")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self._check_binding(node, name, "global name")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        for name in node.names:
            self._check_binding(node, name, "nonlocal name")


class _Transformer(RestrictingNodeTransformer):
    """RestrictedPython's policy with statek's adjustments.

    - ``print`` stays a plain builtin (the namespace's print feeds the caller's sink) instead
      of RestrictedPython's ``printed`` collector;
    - the special methods in ALLOWED_DUNDER_METHODS may be defined in class bodies (the
      checker above makes sure they are in one);
    - ``nonlocal`` and annotated assignments are allowed: both only bind checked names and
      evaluate ordinary, rewritten expressions;
    - augmented assignment to attributes and items is allowed, through guarded hooks;
    - the operators dbzero's containers implement go through hooks, so the checking versions
      (statek.models.value_checks) keep values dbzero cannot take away from it: ``a in b``
      becomes ``_in_(a, b)`` (``not in``: ``not _in_(a, b)``), ``a < b`` (and ``<=``, ``>``,
      ``>=``) ``_compare_("<", a, b)``, and ``a | b`` (and ``^``, ``&``, ``-``, ``+``, ``*``)
      ``_binop_("|", a, b)``; ``==``, ``!=``, ``is`` stay plain (dbzero handles any value there),
      and so do operations dbzero only answers with a TypeError or a lookup of a storable
      literal (``x + 1``, ``i < 10``, ``"k" in d``, ``x in ("a", "b")``), keeping the
      common cases as cheap as before;
      Augmented assignment to names already goes through ``_inplacevar_``.
    - a chained comparison with any hooked operator, ``a < b in c < d``, becomes
      ``_chain_(a, ("<", "in", "<"), b, lambda: c, lambda: d)``: operands are evaluated once,
      left to right, and the hook stops at the first false comparison, as Python does (a and b
      are always evaluated, so only later operands need a thunk). A thunk is its own scope, so
      a later operand may not contain ``:=`` or ``yield``, nor, directly in a class body, names
      (a lambda there cannot see the class's names): those are refused with a clear message.
    """

    _in_class_body = False

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if allow_magic_methods and name in ALLOWED_DUNDER_METHODS:
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            self.used_names[node.id] = True
            if node.id in ("print", "printed"):
                return node
        self.check_name(node, node.id)
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """``obj.attr += v`` / ``obj[k] += v`` (refused by RestrictedPython) become calls to
        the ``_augattr_`` / ``_augitem_`` hooks, which read, operate and write through the
        same guards as plain access. Unlike CPython, `v` is evaluated before the old value
        is read."""
        target = node.target
        if not isinstance(target, ast.Attribute | ast.Subscript):
            return super().visit_AugAssign(node)
        obj = self.visit(target.value)
        if isinstance(target, ast.Attribute):
            hook, key = "_augattr_", ast.Constant(target.attr)
        else:
            hook, key = "_augitem_", self.visit(target.slice)
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        call = ast.Call(ast.Name(hook, ast.Load()), [obj, key, op, self.visit(node.value)], [])
        return ast.fix_missing_locations(ast.copy_location(ast.Expr(call), node))

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        """Every handler first re-raises what job code may not swallow (the step budget),
        whatever it names: `except:`, `except BaseException:`, a tuple or a variable."""
        new = super().visit_ExceptHandler(node)
        if isinstance(new, ast.ExceptHandler):
            call = ast.Call(ast.Name("_reraise_uncatchable_", ast.Load()), [], [])
            first = new.body[0] if new.body else new
            new.body.insert(0, ast.copy_location(ast.Expr(call), first))
            ast.fix_missing_locations(new)
        return new

    def _in_scope(self, in_class: bool, visit: Callable[[], Any]) -> Any:
        outer, self._in_class_body = self._in_class_body, in_class
        try:
            return visit()
        finally:
            self._in_class_body = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return self._in_scope(False, lambda: super(_Transformer, self).visit_FunctionDef(node))

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        return self._in_scope(False, lambda: super(_Transformer, self).visit_Lambda(node))

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        op = _BINARY_OPERATORS.get(type(node.op))
        if op is None or _is_number(node.right) or (
                _is_number(node.left) and op not in ("+", "*")):  # `1 + xs` crashed dbzero
            return node
        return _hook_call("_binop_", [ast.Constant(op), node.left, node.right], node)

    def visit_Compare(self, node: ast.Compare) -> Any:
        node = self.node_contents_visit(node)
        pairs = zip(node.ops, [node.left, *node.comparators[:-1]], node.comparators, strict=True)
        if not any(_needs_hook(op, a, b) for op, a, b in pairs):
            return node
        left, right, later = node.left, node.comparators[0], node.comparators[1:]
        if not later:
            kind = type(node.ops[0])
            if kind is ast.In or kind is ast.NotIn:
                call = _hook_call("_in_", [left, right], node)
                return call if kind is ast.In else ast.copy_location(
                    ast.UnaryOp(ast.Not(), call), node)
            return _hook_call("_compare_", [ast.Constant(_COMPARISONS[kind]), left, right],
                              node)
        self._check_chain_operands(later)
        ops = ast.Tuple([ast.Constant(_COMPARISONS[type(op)]) for op in node.ops], ast.Load())
        no_args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                                kw_defaults=[], kwarg=None, defaults=[])
        thunks = [ast.copy_location(ast.Lambda(no_args, operand), operand) for operand in later]
        return _hook_call("_chain_", [left, ops, right, *thunks], node)

    def _check_chain_operands(self, later: list[ast.expr]) -> None:
        """Refuse what a thunk would change the meaning of (see the class docstring)."""
        for operand in later:
            for part in ast.walk(operand):
                if isinstance(part, ast.NamedExpr | ast.Yield | ast.YieldFrom | ast.Await):
                    _fail(part, "':=' or 'yield' after the second operand of a chained "
                          "comparison is not supported in restricted mode; split the chain "
                          "(a < b and b < c)")
                if self._in_class_body and isinstance(part, ast.Name):
                    _fail(part, "a chained comparison directly in a class body may not use "
                          "names after its second operand in restricted mode; split the "
                          "chain (a < b and b < c)")

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        # RestrictedPython rebuilds the class node from a template parsed at line 1.
        new = self._in_scope(True, lambda: super(_Transformer, self).visit_ClassDef(node))
        if isinstance(new, ast.ClassDef):
            ast.copy_location(new, node)
            for keyword in new.keywords:
                for part in ast.walk(keyword):
                    ast.copy_location(part, node)
        return new


#: Source text of the operators routed through hooks (see _Transformer).
_BINARY_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&",
}  # fmt: skip
_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in", ast.NotIn: "not in",
    ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_HOOKED_COMPARISONS = frozenset({ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn})


def _is_number(node: ast.expr) -> bool:
    """A number literal (``-1`` included): dbzero's containers only raise TypeError against
    one, except as the left operand of ``+`` and ``*`` (see visit_BinOp)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool)


def _is_plain_key(node: ast.expr) -> bool:
    """A literal every dbzero container can look up (a 64-bit non-negative int, a short
    ASCII str without NUL, a float, a bool, None)."""
    if not isinstance(node, ast.Constant):
        return False
    value = node.value
    if type(value) is int:
        return 0 <= value < 2**63
    if type(value) is str:
        return len(value) <= 4096 and value.isascii() and "\x00" not in value
    return type(value) in (float, bool) or value is None


_DISPLAYS = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.ListComp, ast.SetComp,
             ast.DictComp, ast.JoinedStr)


def _needs_hook(op: ast.cmpop, left: ast.expr, right: ast.expr) -> bool:
    """Whether `left op right` could hand a dbzero container a value it cannot take: not for
    unhooked operators, nor a membership test of a literal key or in a literal container (a
    plain one), nor an ordered comparison with a number literal (dbzero raises TypeError)."""
    kind = type(op)
    if kind not in _HOOKED_COMPARISONS:
        return False
    if kind is ast.In or kind is ast.NotIn:
        return not (_is_plain_key(left) or isinstance(right, _DISPLAYS))
    return not (_is_number(left) or _is_number(right))


def _hook_call(hook: str, args: list[ast.expr], node: ast.AST) -> ast.Call:
    call = ast.Call(ast.Name(hook, ast.Load()), args, [])
    return ast.copy_location(call, node)


def _restrict(tree: ast.Module | ast.Expression) -> ast.Module | ast.Expression:
    errors: list[str] = []
    transformer = _Transformer(errors, [], {})
    new_tree = transformer.visit(tree)
    if errors:
        raise SandboxViolation("restricted mode refused the code: " + "; ".join(errors))
    assert isinstance(new_tree, ast.Module | ast.Expression)
    return ast.fix_missing_locations(new_tree)

"""compile_block: caching, limits, error messages, and the per-statement split."""

from __future__ import annotations

import time

import pytest

from statek.errors import ConfigurationError, SandboxViolation
from statek.sandbox import (
    CompiledBlock,
    SandboxPolicy,
    clear_compile_cache,
    compile_block,
    compile_cache_size,
)
from statek.sandbox import compiler as compiler_module

RESTRICTED = SandboxPolicy()
UNRESTRICTED = SandboxPolicy(restricted=False)
BOTH = pytest.mark.parametrize("policy", [RESTRICTED, UNRESTRICTED], ids=["restricted", "open"])


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_compile_cache()


# --- cache ----------------------------------------------------------------------------------


def test_cache_hit_returns_the_same_object() -> None:
    block = compile_block("x = 1\ny = x + 1\n", RESTRICTED)
    assert isinstance(block, CompiledBlock)
    assert compile_block("x = 1\ny = x + 1\n", RESTRICTED) is block


def test_equal_policies_share_cache_entries() -> None:
    block = compile_block("x = 1", SandboxPolicy())
    assert compile_block("x = 1", SandboxPolicy()) is block
    assert compile_cache_size() == 1


def test_different_policies_do_not_share_entries() -> None:
    restricted = compile_block("x = 1", RESTRICTED)
    unrestricted = compile_block("x = 1", UNRESTRICTED)
    assert restricted is not unrestricted
    narrow = SandboxPolicy(allowed_imports=frozenset({"math"}))
    compile_block("import json", RESTRICTED)
    with pytest.raises(SandboxViolation, match="import of 'json' is not allowed"):
        compile_block("import json", narrow)


def test_failures_are_cached_but_raised_fresh_each_time() -> None:
    with pytest.raises(SandboxViolation) as first:
        compile_block("import os", RESTRICTED)
    size = compile_cache_size()
    with pytest.raises(SandboxViolation) as second:
        compile_block("import os", RESTRICTED)
    assert compile_cache_size() == size
    assert str(first.value) == str(second.value)
    assert first.value is not second.value


def test_cache_is_bounded_lru(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler_module, "CACHE_MAX_ENTRIES", 3)
    a = compile_block("a = 1", RESTRICTED)
    compile_block("b = 1", RESTRICTED)
    compile_block("c = 1", RESTRICTED)
    assert compile_block("a = 1", RESTRICTED) is a  # touch: "b" is now the oldest
    compile_block("d = 1", RESTRICTED)
    assert compile_cache_size() == 3
    assert compile_block("a = 1", RESTRICTED) is a
    assert compile_block("b = 1", RESTRICTED) is not None  # recompiled, evicting "c"
    assert compile_cache_size() == 3


def test_cache_is_bounded_by_total_source_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler_module, "CACHE_MAX_CHARS", 25)
    compile_block("alpha = 1  # ten more", RESTRICTED)
    compile_block("beta = 2  # ten more!", RESTRICTED)
    assert compile_cache_size() == 1


def test_cache_hit_is_cheap() -> None:
    """Regression guard only (loose bound for busy CI machines); the target is < 1 µs."""
    source = "import math\n" + "\n".join(f"v{i} = math.sqrt({i})" for i in range(50))
    compile_block(source, RESTRICTED)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        compile_block(source, RESTRICTED)
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 20e-6


# --- limits and errors -----------------------------------------------------------------------


@BOTH
def test_source_length_limit(policy: SandboxPolicy) -> None:
    limited = SandboxPolicy(restricted=policy.restricted, max_source_chars=20)
    compile_block("x = 1", limited)
    with pytest.raises(SandboxViolation, match="30 characters long; the limit is 20"):
        compile_block("x = 1" + " " * 25, limited)


@BOTH
def test_ast_node_limit(policy: SandboxPolicy) -> None:
    limited = SandboxPolicy(restricted=policy.restricted, max_ast_nodes=10)
    compile_block("x = 1", limited)
    with pytest.raises(SandboxViolation, match="more than 10 syntax nodes"):
        compile_block("x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", limited)


@BOTH
def test_syntax_error_names_line_and_column(policy: SandboxPolicy) -> None:
    with pytest.raises(SandboxViolation) as info:
        compile_block("x = 1\ny = 2\nz = = 3\n", policy)
    message = str(info.value)
    assert "syntax error at line 3" in message
    assert "column" in message
    assert "z = = 3" in message


@BOTH
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\nreturn x", "line 2.*'return' outside function"),
        ("x = 1\n\nbreak", "line 3.*'break' outside loop"),
        ("yield 5", "line 1.*'yield' outside function"),
    ],
)
def test_errors_found_by_compile_name_the_line(
    policy: SandboxPolicy, source: str, expected: str
) -> None:
    with pytest.raises(SandboxViolation, match=expected):
        compile_block(source, policy)


@BOTH
def test_top_level_await_is_refused_clearly(policy: SandboxPolicy) -> None:
    with pytest.raises(SandboxViolation, match=r"line 2: 'await'.*at top level is not supported"):
        compile_block("x = 1\nresult = await fetch()\n", policy)


def test_await_in_plain_function_is_refused_clearly() -> None:
    with pytest.raises(SandboxViolation, match="outside an async function"):
        compile_block("def f():\n    return await g()\n", UNRESTRICTED)


def test_await_inside_async_def_is_fine_when_unrestricted() -> None:
    compile_block("async def f(g):\n    return await g()\n", UNRESTRICTED)


@BOTH
def test_deep_nesting_is_a_violation_not_a_crash(policy: SandboxPolicy) -> None:
    with pytest.raises(SandboxViolation, match="nested too deeply"):
        compile_block("x = " + "-" * 5000 + "1", policy)


def test_source_must_be_str() -> None:
    with pytest.raises(SandboxViolation, match="must be str"):
        compile_block(b"x = 1", RESTRICTED)  # type: ignore[arg-type]


def test_future_imports_apply_to_later_statements() -> None:
    source = "from __future__ import annotations\ndef f(x: Undefined) -> Missing:\n    return x\n"
    block = compile_block(source, RESTRICTED)
    assert len(block.statements) == 2


def test_future_import_after_code_is_refused() -> None:
    with pytest.raises(SandboxViolation, match="line 2: from __future__ imports must come first"):
        compile_block("x = 1\nfrom __future__ import annotations\n", RESTRICTED)


# --- statements ------------------------------------------------------------------------------


def test_statements_keep_index_line_and_source() -> None:
    source = (
        "x = 1; y = 2\n"
        "\n"
        "@staticmethod\n"
        "def f(a):\n"
        "    return a\n"
        "x + y\n"
        'text = "héllo"; n = len(text)\n'
    )
    block = compile_block(source, RESTRICTED)
    got = [(s.index, s.lineno, s.source, s.echo) for s in block.statements]
    assert got == [
        (0, 1, "x = 1", False),
        (1, 1, "y = 2", False),
        (2, 3, "@staticmethod\ndef f(a):\n    return a", False),
        (3, 6, "x + y", True),
        (4, 7, 'text = "héllo"', False),
        (5, 7, "n = len(text)", False),
    ]
    assert block.source == source


def test_windows_line_endings() -> None:
    block = compile_block("x = 1\r\nif x:\r\n    y = 2\r\n", RESTRICTED)
    assert [s.source for s in block.statements] == ["x = 1", "if x:\r\n    y = 2"]


def test_empty_source_has_no_statements() -> None:
    assert compile_block("# only a comment\n", RESTRICTED).statements == ()


@BOTH
def test_code_objects_carry_original_line_numbers(policy: SandboxPolicy) -> None:
    block = compile_block("a = 1\n\n\nb = 2\n", policy)
    lines = [{line for *_, line in s.code.co_lines() if line} for s in block.statements]
    assert lines == [{1}, {4}]


# --- policy ----------------------------------------------------------------------------------


def test_policy_is_hashable_and_compares_by_value() -> None:
    assert SandboxPolicy() == SandboxPolicy()
    assert hash(SandboxPolicy()) == hash(SandboxPolicy())
    assert SandboxPolicy() != SandboxPolicy(restricted=False)
    assert len({SandboxPolicy(), SandboxPolicy(), SandboxPolicy(max_ast_nodes=5)}) == 2


def test_policy_survives_pickling_into_the_cache_key_space() -> None:
    import copy
    import pickle

    policy = SandboxPolicy(max_ast_nodes=1234)
    for clone in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy), copy.copy(policy)):
        assert clone == policy and hash(clone) == hash(policy)
        assert compile_block("x = 1", clone) is compile_block("x = 1", policy)


def test_policy_normalizes_allowed_imports_to_frozenset() -> None:
    policy = SandboxPolicy(allowed_imports={"math"})  # type: ignore[arg-type]
    assert policy.allowed_imports == frozenset({"math"})
    assert policy == SandboxPolicy(allowed_imports=frozenset({"math"}))


@pytest.mark.parametrize("module", ["os", "sys", "operator", "string", "os.path", "_thread"])
def test_policy_refuses_dangerous_modules_in_restricted_mode(module: str) -> None:
    with pytest.raises(ConfigurationError, match=module):
        SandboxPolicy(allowed_imports=frozenset({"math", module}))


def test_unrestricted_policy_does_not_judge_imports() -> None:
    SandboxPolicy(restricted=False, allowed_imports=frozenset({"os"}))


def test_policy_limits_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        SandboxPolicy(max_source_chars=0)

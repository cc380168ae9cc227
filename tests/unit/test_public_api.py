"""The public surface is fenced: `statek.__all__`, the runner API's import paths and the
errors the README promises. A name that appears or disappears fails here first."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

import statek

ROOT = Path(__file__).resolve().parents[2]
#: Where the statek under test lives (the source tree, or site-packages for a wheel's run).
PACKAGE_PARENT = Path(statek.__file__).resolve().parents[1]

#: The whole top-level surface. Adding a name is a decision: add it here in the same change.
PUBLIC = {
    "Agent", "AgentNotFoundError", "BudgetExhausted", "ConfigurationError", "Future",
    "IllegalTransitionError", "Job",
    "JobDef", "JobNotFoundError", "JobPendingError", "JobStatus", "MissingAPIKeyError",
    "NotInitializedError", "ProviderError", "ProviderNotConfiguredError", "ProviderNotFoundError",
    "SandboxViolation", "StatekClientAPI", "StatekError", "StatekPushQueue", "StatekSettings",
    "StoreDamagedError", "StoreLockedError", "SupervisedAgent", "UnstorableValueError",
    "__version__", "add_provider",
    "close", "commit_all", "connect", "get_provider", "get_statek_settings", "init",
    "open_default_store", "open_prefix", "speedups_enabled", "start_statek",
    "start_statek_async", "tool",
}  # fmt: skip

#: Modules whose path a contract fixes; they only re-export (no logic lives in a path shim).
SHIMS = [
    "statek/executors/utils.py", "statek/agents/agent.py", "statek/agents/__init__.py",
    "statek/statek_push_queue.py",
]  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(statek.__all__) == PUBLIC
    assert len(statek.__all__) == len(PUBLIC), "a name is listed twice in statek.__all__"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_resolves_and_is_listed_by_dir(name: str) -> None:
    assert getattr(statek, name) is not None
    assert name in dir(statek)


def test_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        statek.no_such_name  # noqa: B018


def test_lazy_names_are_declared_for_type_checkers() -> None:
    """The TYPE_CHECKING block imports exactly the lazy names, from the modules they load from."""
    tree = ast.parse((PACKAGE_PARENT / "statek/__init__.py").read_text())
    declared: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                declared.update({alias.name: stmt.module for alias in stmt.names})
    assert declared == statek._LAZY


def _runner_api_table() -> list[tuple[str, list[str]]]:
    """(symbol, import paths) rows of docs/runner-api.md's import-path table."""
    rows = []
    text = (ROOT / "docs/runner-api.md").read_text()
    for match in re.finditer(r"^\| `(\w+)` \| (.+?) \| .+\|$", text, re.MULTILINE):
        rows.append((match[1], re.findall(r"`([\w.]+)`", match[2])))
    return rows


def test_runner_api_table_is_complete() -> None:
    names = {name for name, _ in _runner_api_table()}
    assert names == {
        "start_statek", "start_statek_async", "run_job_step", "run_jobs_loop", "run_agentic_loop",
        "run_agentic_fleet", "AgentLoopDef", "process_push_notifications", "process_agent_events",
        "unsuspend_jobs",
    }  # fmt: skip


@pytest.mark.parametrize(("name", "paths"), _runner_api_table())
def test_runner_api_import_paths(name: str, paths: list[str]) -> None:
    """Every documented path gives the same object."""
    found = {id(getattr(importlib.import_module(path), name)) for path in paths}
    assert len(found) == 1, f"{name} differs between {paths}"


def test_executors_utils_exports_the_runner_api() -> None:
    utils = importlib.import_module("statek.executors.utils")
    expected = {name for name, paths in _runner_api_table() if "statek.executors.utils" in paths}
    assert set(utils.__all__) == expected


@pytest.mark.parametrize("path", SHIMS)
def test_path_shims_only_reexport(path: str) -> None:
    tree = ast.parse((PACKAGE_PARENT / path).read_text())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and "re-export" in body[0].value.value  # type: ignore[attr-defined]
    for stmt in body[1:]:
        is_all = isinstance(stmt, ast.Assign) and [t.id for t in stmt.targets] == ["__all__"]  # type: ignore[attr-defined]
        assert isinstance(stmt, ast.ImportFrom | ast.Import) or is_all, (
            f"{path}:{stmt.lineno} is logic in a path shim"
        )


def test_every_error_the_readme_names_is_exported() -> None:
    """A user catches what the README says is raised: each of statek's errors is importable
    from `statek` (builtin and asyncio errors are not ours)."""
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b([A-Z]\w*(?:Error|Violation|Exhausted))\b", readme))
    ours = {name for name in named if not hasattr(builtins, name) and name != "CancelledError"}
    assert ours, "the README names no statek error: the pattern is broken"
    assert ours <= set(statek.__all__), sorted(ours - set(statek.__all__))


def test_every_statek_error_class_is_exported() -> None:
    errors = importlib.import_module("statek.errors")
    classes = {
        name for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }  # fmt: skip
    assert classes <= set(statek.__all__), sorted(classes - set(statek.__all__))

"""Limits on what job code and the client API may store, with the error each gives."""

from __future__ import annotations

import asyncio
import decimal
from typing import Any

import pytest

import statek
from statek.errors import UnstorableValueError
from statek.executors.utils import run_job_step
from statek.models import value_checks
from statek.models.storable import MAX_DEPTH, name_problem, unstorable_reason
from statek.providers import ScriptedProvider, add_provider, remove_provider

PROVIDER = "values-paths"


@pytest.fixture
def provider(statek_store: str) -> Any:
    add_provider(PROVIDER, ScriptedProvider(["exit(0)"], cycle=True))
    yield PROVIDER
    remove_provider(PROVIDER)


def run_code(api: statek.StatekClientAPI, agent: statek.Agent, code: str,
             shared: dict[str, Any] | None = None) -> Any:
    job = api.submit_new_job(agent, shared or {}, warmup_code=code)

    async def go() -> None:
        for _ in range(3):
            if await run_job_step(job, PROVIDER):
                return

    asyncio.run(go())
    return job


@pytest.mark.parametrize("name", ["_getattr_", "__builtins__", "_write_", "_x", "class",
                                  "not valid", "1a", ""])
def test_shared_variable_names_are_checked(api: statek.StatekClientAPI,
                                           agent: statek.Agent, name: str) -> None:
    with pytest.raises(UnstorableValueError, match="shared_vars: name"):
        api.submit_new_job(agent, {name: 1})
    assert name_problem(name) is not None


def test_ordinary_names_including_soft_keywords_are_accepted() -> None:
    assert [name_problem(n) for n in ("x", "match", "case", "type", "é")] == [None] * 5


def test_delegate_refuses_a_name_that_would_replace_a_sandbox_hook(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "f = delegate(helper, **{'_getattr_': 1})\nexit(1)",
                   {"helper": agent})
    assert job.exit_status is None and "UnstorableValueError" in job.error
    assert "'_getattr_' starts with '_'" in job.error


def test_a_batch_with_one_bad_job_stores_none(api: statek.StatekClientAPI,
                                             agent: statek.Agent) -> None:
    before = len(statek.models.root.root_for().jobs)
    with pytest.raises(UnstorableValueError, match=r"shared_vars_batch\[2\]"):
        api.submit_new_jobs_batch(agent, [{"a": 1}, {"b": 2}, {"c": (decimal.Decimal("NaN"),)}])
    assert len(statek.models.root.root_for().jobs) == before


@pytest.mark.parametrize(("call", "match"), [
    (lambda api, agent, job: api.push_message(job, decimal.Decimal("NaN")), "non-finite"),
    (lambda api, agent, job: api.push_event(agent, {(-1, 2): 1}), "negative int"),
    (lambda api, agent, job: api.push_message("\ud800", 1), "no job with uuid"),
    (lambda api, agent, job: api.queue.push_message("\ud800", 1), "not a dbzero uuid"),
    (lambda api, agent, job: api.submit_new_job(agent, {}, metadata={"m": 2**64}), "64 bits"),
    (lambda api, agent, job: api.submit_new_job(agent, {}, warmup_code=1), "must be a str"),
    (lambda api, agent, job: api.submit_new_job(agent, {}, p="a\x00"), "NUL"),
])
def test_client_calls_refuse_what_crashed_dbzero(api: statek.StatekClientAPI,
                                                 agent: statek.Agent, call: Any,
                                                 match: str) -> None:
    job = api.submit_new_job(agent, {})
    with pytest.raises((UnstorableValueError, statek.JobNotFoundError), match=match):
        call(api, agent, job)


def test_get_job_with_a_string_dbzero_cannot_look_up(api: statek.StatekClientAPI) -> None:
    with pytest.raises(statek.JobNotFoundError):
        api.get_job("a\ud800")


def test_depth_limit_is_exact() -> None:
    def nest(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    assert unstorable_reason(nest(MAX_DEPTH)) is None
    assert "too deeply nested (limit 64" in (unstorable_reason(nest(MAX_DEPTH + 1)) or "")
    assert "too deeply nested" in (unstorable_reason(nest(100_000)) or "")


def test_decimal_rules() -> None:
    ok = ["1.5", "-0.001", "9" * 17, "1E-63", "0"]
    bad = ["NaN", "sNaN", "Infinity", "1E+2", "9" * 18, "1E-64"]
    assert [unstorable_reason(decimal.Decimal(t)) for t in ok] == [None] * len(ok)
    assert all(unstorable_reason(decimal.Decimal(t)) for t in bad)


def test_job_code_writes_into_persisted_containers_are_checked(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "xs = [[1]]\n# %%\nxs[0].append((10**30,))")
    assert "UnstorableValueError: cannot pass this value to list.append(): int" in job.error
    assert list(job.locals["xs"][0]) == [1]


def test_deep_nesting_in_job_code_is_refused(api: statek.StatekClientAPI,
                                             agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "d = {}\n# %%\nv = 1\nfor i in range(5000):\n    v = [v]\n"
                               "# %%\nd['v'] = v")
    assert "too deeply nested (limit 64" in job.error


def test_a_huge_print_fails_the_statement_with_the_cap(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "print('x' * 1_500_000)")
    assert "over the limit of 1,000,000" in job.error and job.console[-1].startswith("Trace")


def test_a_huge_exit_value_gets_a_bounded_preview_and_a_clear_error(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "exit(['x' * 1000] * 20_000)")
    assert "value too large (limit 16 MiB" in job.error
    assert len(job.exit_status) <= value_checks.EXIT_PREVIEW_CHARS + 40


def test_an_exit_int_too_long_for_repr_is_kept_as_a_bounded_preview(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    """repr() itself raises for ints over 4,300 digits: the preview must not."""
    job = run_code(api, agent, "exit(10 ** 5000)")
    assert job.is_done and "internal error" not in (job.error or "")
    assert "could not be stored" in job.error and "64 bits" in job.error
    assert isinstance(job.exit_status, str)
    assert len(job.exit_status) <= value_checks.EXIT_PREVIEW_CHARS + 40


def test_a_local_dbzero_cannot_hold_is_kept_in_memory_and_the_job_is_told(
        api: statek.StatekClientAPI, agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "n = 2 ** 100\nf = len\nexit(n % 7)")
    assert job.exit_status == 2 ** 100 % 7 and job.error is None
    notes = [line for line in job.console if "kept in memory only" in line]
    assert len(notes) == 1 and notes[0].startswith("[statek] n ") and "64 bits" in notes[0]


def test_a_huge_error_is_cut(api: statek.StatekClientAPI, agent: statek.Agent,
                             provider: str) -> None:
    job = run_code(api, agent, "raise ValueError('z' * 200_000)")
    assert len(job.error) < value_checks.MAX_ERROR_CHARS + 100 and "characters cut" in job.error


def test_console_escapes_what_dbzero_cannot_store(api: statek.StatekClientAPI,
                                                  agent: statek.Agent, provider: str) -> None:
    job = run_code(api, agent, "print('a\\x00b\\ud800')\nexit(1)")
    assert job.console == ["a\\x00b\\ud800\n"] and job.exit_status == 1

"""Budget nodes, limits, prices, charging up the tree and releasing held jobs, without a
worker (steps are run with `execute_step`, the scheduler is a recording listener)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

import statek
from statek import signals, store
from statek.admission import budgets
from statek.execution.step import execute_step
from statek.models.budget import Budget, BudgetExhausted, checked_limits, first_exhausted
from statek.models.status import DONE, STARTED, SUSPENDED
from statek.providers import ScriptedProvider, add_provider
from statek.providers.types import ChatReply, Usage

LLM = "budget-unit-llm"


class Recorder:
    """A readiness listener that only records which jobs were made runnable."""

    def __init__(self) -> None:
        self.runnable: list[str] = []

    def job_runnable(self, job_uuid: str, job: object = None, jobdef: object = None) -> None:
        self.runnable.append(job_uuid)

    def job_finished(self, job_uuid: str) -> None:
        pass

    def job_messaged(self, job_uuid: str) -> None:
        pass

    def timer_set(self, job_uuid: str, deadline: float) -> None:
        pass

    def queue_pushed(self) -> None:
        pass


def _step(job: Any) -> Any:
    return asyncio.run(execute_step(job, LLM))


@pytest.fixture
def scripted(statek_store: str) -> ScriptedProvider:
    provider = ScriptedProvider([ChatReply("exit('ok')", usage=Usage(1000, 500))],
                                default_model="m1")
    add_provider(LLM, provider)
    return provider


# ---------------------------------------------------------------- limits and nodes
def test_checked_limits_accepts_and_converts() -> None:
    out = checked_limits({"tokens": 5, "cost": 1, "steps": 0, "seconds": 2.5, "policy": "fail"},
                         "here")
    assert out == {"tokens": 5, "cost": 1.0, "steps": 0, "seconds": 2.5, "policy": "fail"}
    assert isinstance(out["cost"], float)
    assert checked_limits({"tokens": None}, "here") == {}


@pytest.mark.parametrize("values, message", [
    ({"money": 1}, "here: unknown budget key 'money'"),
    ({"tokens": True}, "budget tokens must be an int, not True"),
    ({"steps": "3"}, "budget steps must be an int, not '3'"),
    ({"seconds": -1}, "budget seconds must be >= 0 and finite, not -1"),
    ({"cost": math.inf}, "budget cost must be >= 0 and finite, not inf"),
    ({"tokens": 2**70}, "budget tokens must be >= 0 and finite"),
    ({"policy": "retry"}, "budget policy must be 'suspend' or 'fail', not 'retry'"),
])
def test_checked_limits_names_the_problem(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        checked_limits(values, "here")
    assert message in str(refused.value)


def test_nodes_report_the_first_exhausted_budget_up_the_tree(statek_store: str) -> None:
    now = time.time()
    top = Budget("TOP")
    top.apply({"tokens": 100, "steps": 5})
    mid = Budget("MID", parent=top)
    mid.apply({"cost": 0.5})
    assert first_exhausted(mid, now) is None
    top.spent_steps = 5
    node, why = first_exhausted(mid, now)  # type: ignore[misc]
    assert node is top and why == BudgetExhausted("steps", 5, 5, "TOP", "suspend")
    mid.spent_cost = 0.75
    node, why = first_exhausted(mid, now)  # type: ignore[misc]
    assert node is mid and (why.kind, why.spent, why.limit) == ("cost", 0.75, 0.5)
    assert str(why) == "BudgetExhausted: cost 0.75 of 0.5 (budget of job MID, policy suspend)"
    assert why.as_dict()["state"] == "BudgetExhausted"


def test_price_of_uses_the_table_and_the_wildcard(statek_store: str) -> None:
    assert budgets.price_of("gpt-x", 1000, 1000) == 0.0  # no table: free
    store.init(statek.get_statek_settings(model_prices={"gpt-x": (2.0, 10.0), "*": (1.0, 1.0)}))
    assert budgets.price_of("gpt-x", 500_000, 100_000) == pytest.approx(1.0 + 1.0)
    assert budgets.price_of("other", 1_000_000, 0) == pytest.approx(1.0)


# ---------------------------------------------------------------- steps and charging
def test_a_job_without_budget_is_untouched(api: statek.StatekClientAPI,
                                           scripted: ScriptedProvider) -> None:
    job = api.submit_new_job(statek.Agent("free"), {})
    _step(job)
    _step(job)
    assert job.state == DONE and job.budget is None and api.get_budget(job) is None


def test_cost_budget_from_the_price_table(api: statek.StatekClientAPI,
                                          scripted: ScriptedProvider) -> None:
    store.init(statek.get_statek_settings(default_provider="scripted",
                                          model_prices={"m1": (1.0, 2.0)}))
    job = api.submit_new_job(statek.Agent("payer"), {}, model=f"{LLM}/m1")
    api.set_budget(job, cost=0.002)  # one reply costs 0.001 + 0.001
    result = _step(job)
    assert result.suspended and job.state == SUSPENDED
    held = job.budget_exhausted
    assert (held.kind, held.limit) == ("cost", 0.002)
    assert held.spent == pytest.approx(0.002)
    assert job.ran_turn < job.turns  # the paid reply's code waits for the job to resume


def test_charges_count_against_every_ancestor_and_release_wakes(
        api: statek.StatekClientAPI, scripted: ScriptedProvider) -> None:
    recorder = Recorder()
    signals.subscribe(recorder)
    helper = statek.Agent("helper")
    boss = api.submit_new_job(statek.Agent("boss"), {"helper": helper},
                              warmup_code="kid = delegate(helper)\nexit(kid.value)")
    api.set_budget(boss, tokens=1500, steps=10)
    _step(boss)  # delegates, then waits on its child
    assert boss.state == SUSPENDED and boss.budget_exhausted is None
    (kid_uuid,) = [u for u in recorder.runnable if u != boss.uuid]
    kid = api.get_job(kid_uuid)
    assert kid.budget is not None and kid.budget.owner == boss.uuid  # shares the tree's
    _step(kid)  # one reply: 1500 tokens, the tree's whole budget
    assert kid.budget_exhausted == BudgetExhausted("tokens", 1500, 1500, boss.uuid, "suspend")
    info = api.get_budget(boss)
    assert info["spent"]["tokens"] == 1500 and info["spent"]["steps"] == 2
    assert info["waiting"] == 1
    recorder.runnable.clear()
    assert _step(kid).ran is False  # a held job does not run, whoever steps it
    api.raise_budget(boss, tokens=1)
    assert kid.state == STARTED and kid.budget_exhausted is None
    assert recorder.runnable == [kid_uuid]  # woken through the scheduler's signal
    _step(kid)
    assert kid.state == DONE and kid.exit_status == "ok"


def test_release_moves_a_job_to_the_budget_still_exhausted(
        api: statek.StatekClientAPI, scripted: ScriptedProvider) -> None:
    job = api.submit_new_job(statek.Agent("nested"), {})
    outer = api.set_budget(job, tokens=10)
    assert outer["owner"] == job.uuid
    _step(job)
    assert job.budget_exhausted.kind == "tokens"
    with store.transition():  # an enclosing budget above it, also exhausted
        above = Budget("ABOVE")
        above.apply({"steps": 1})
        above.spent_steps = 1
        job.budget.parent = above
    api.raise_budget(job, tokens=10_000)
    assert job.state == SUSPENDED
    assert job.budget_exhausted == BudgetExhausted("steps", 1, 1, "ABOVE", "suspend")
    assert job.budget_hold.waiting is not None and job.uuid in job.budget_hold.waiting


def test_raise_needs_a_budget_and_a_limit(api: statek.StatekClientAPI) -> None:
    job = api.submit_new_job(statek.Agent("plain"), {})
    with pytest.raises(ValueError, match=f"job {job.uuid} has no budget to raise"):
        api.raise_budget(job, tokens=5)
    api.set_budget(job, tokens=5)
    with pytest.raises(ValueError, match=r"the steps budget of job \w+ has no limit to raise"):
        api.raise_budget(job, steps=1)
    with pytest.raises(ValueError, match="name at least one of tokens, cost, steps, seconds"):
        api.raise_budget(job)
    assert api.raise_budget(job, tokens=5)["limits"]["tokens"] == 10


def test_set_budget_twice_is_the_same_budget(api: statek.StatekClientAPI) -> None:
    job = api.submit_new_job(statek.Agent("again"), {})
    first = api.set_budget(job, tokens=5, policy="fail")
    node = job.budget
    second = api.set_budget(job, tokens=5)
    assert job.budget == node and first["limits"] == second["limits"]
    assert second["policy"] == "fail"


def test_settings_policy_is_the_default(api: statek.StatekClientAPI,
                                        scripted: ScriptedProvider) -> None:
    store.init(statek.get_statek_settings(default_provider="scripted", budget_policy="fail"))
    job = api.submit_new_job(statek.Agent("strict"), {})
    assert api.set_budget(job, tokens=1)["policy"] == "fail"
    _step(job)
    assert job.state == DONE and job.error.startswith("budget exhausted: tokens 1500 of 1")


def test_job_code_set_budget_takes_only_its_own_children(
        api: statek.StatekClientAPI, scripted: ScriptedProvider) -> None:
    other = api.submit_new_job(statek.Agent("stranger"), {})
    code = ("try:\n    set_budget(stranger, tokens=1)\nexcept TypeError as exc:\n"
            "    exit(str(exc))")
    job = api.submit_new_job(statek.Agent("meddler"), {"stranger": other}, warmup_code=code)
    _step(job)
    assert job.state == DONE
    assert job.exit_status == ("set_budget() takes a job this job delegated (the future "
                               "delegate() returned)")
    assert other.budget is None


def test_a_stale_hold_is_not_a_hold(api: statek.StatekClientAPI,
                                    scripted: ScriptedProvider) -> None:
    """A held job ended another way (quarantine) and re-opened by a message, now waiting on a
    message: neither reported as held nor resumed by a raise."""
    from statek.models.future import MESSAGE, Future

    job = api.submit_new_job(statek.Agent("stale"), {})
    api.set_budget(job, tokens=1)
    _step(job)
    node = job.budget_hold
    assert job.budget_exhausted is not None
    with store.transition():
        job.finish(error="quarantined")
    job.push_user_message("again")
    assert job.state == STARTED and job.budget_exhausted is None
    with store.transition():
        job.awaiting = Future(MESSAGE, job)
        job.set_status(SUSPENDED)
        node.waiting = {job.uuid: job}
    assert job.budget_hold is not None and job.budget_exhausted is None
    api.raise_budget(job, tokens=10_000)
    assert job.state == SUSPENDED and job.awaiting.kind == MESSAGE

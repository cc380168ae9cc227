"""A budgeted tree suspends and resumes, through a real worker loop (`run_jobs_loop`) and the
offline scripted provider: the tree's token budget runs out, every job that tries to go on is
held with a BudgetExhausted, the store is closed and reopened (a worker restart), an operator
raises the budget with the client call, and the tree completes. Also the "fail" policy, steps
and wall-time budgets, and a parent's `set_budget()` for a child."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek import store
from statek.executors.utils import run_jobs_loop
from statek.models.budget import BudgetExhausted
from statek.models.status import DONE, SUSPENDED
from statek.providers import ScriptedProvider, add_provider
from statek.providers.types import ChatReply, Usage

LLM = "budget-llm"
PER_REPLY = 150  # tokens each scripted reply reports (100 in, 50 out)

PARENT = """
kids = [delegate(child, i=i) for i in range(4)]
results = get_all(kids).value
exit(sum(results))
"""


def _provider() -> ScriptedProvider:
    """Every reply is code exiting with the child's `i` times 10, and reports 150 tokens."""
    provider = ScriptedProvider([ChatReply("exit(i * 10)", usage=Usage(100, 50))])
    add_provider(LLM, provider)
    return provider


def _run_until_idle() -> None:
    """One worker run: it returns once no job can make progress."""
    asyncio.run(run_jobs_loop(8, LLM, queue_prefixes=["test"], auto_terminate=True))


def _reopen(db_root: Path) -> None:
    """What a worker restart does to the store: everything closed, then opened again."""
    store.close()
    db0.init(dbzero_root=str(db_root))
    statek.init()
    statek.open_prefix("test", "rw")


def _tree(api: statek.StatekClientAPI, tokens: int) -> tuple[str, statek.Agent]:
    child = statek.Agent("child", "You answer with code.")
    parent = statek.Agent("parent", "You delegate.")
    job = api.submit_new_job(parent, {"child": child}, warmup_code=PARENT)
    api.set_budget(job, tokens=tokens)
    return job.uuid, child


def _children(api: statek.StatekClientAPI, parent_uuid: str) -> list[statek.Job]:
    return [j for j in db0.find(statek.Job)
            if j.parent is not None and db0.uuid(j.parent) == parent_uuid]


def test_tree_suspends_on_tokens_and_resumes_after_restart_and_raise(
        api: statek.StatekClientAPI, db_root: Path) -> None:
    _provider()
    parent_uuid, _ = _tree(api, tokens=400)  # 3 replies (450 tokens) run it out
    _run_until_idle()

    # Which children ran their reply's code before the third reply ran the budget out
    # depends on the order their steps ran (a child keeps its slot for its next step, so
    # the first ones may finish): each child is either done with its answer or held.
    children = _children(api, parent_uuid)
    assert len(children) == 4
    done = [kid for kid in children if kid.state == DONE]
    held_kids = [kid for kid in children if kid.state != DONE]
    assert held_kids and all(kid.state == SUSPENDED for kid in held_kids)
    assert len(done) <= 2 and all(kid.exit_status == kid.locals_dict()["i"] * 10
                                  for kid in done)
    held = [kid.budget_exhausted for kid in held_kids]
    assert all(isinstance(h, BudgetExhausted) for h in held)
    assert {(h.kind, h.spent, h.limit, h.owner) for h in held} == {
        ("tokens", 3 * PER_REPLY, 400, parent_uuid)}
    info = api.get_budget(parent_uuid)
    assert info is not None
    assert info["spent"]["tokens"] == 3 * PER_REPLY  # the children's spending, on the parent
    assert info["exhausted"]["budget"] == "tokens"
    assert info["waiting"] == len(held_kids)
    held_uuids = {kid.uuid for kid in held_kids}
    del children, held, done, held_kids

    _reopen(db_root)  # budgets, spending and held jobs are all in the store
    api = statek.StatekClientAPI()
    children = [kid for kid in _children(api, parent_uuid) if kid.uuid in held_uuids]
    assert all(kid.state == SUSPENDED for kid in children)
    assert all(kid.budget_exhausted.kind == "tokens" for kid in children)
    del children

    _provider()
    _run_until_idle()  # a restarted worker leaves held jobs alone
    assert all(kid.state == SUSPENDED for kid in _children(api, parent_uuid)
               if kid.uuid in held_uuids)

    raised = api.raise_budget(parent_uuid, tokens=1000)
    assert raised["limits"]["tokens"] == 1400 and raised["exhausted"] is None
    assert all(kid.budget_exhausted is None for kid in _children(api, parent_uuid))
    _run_until_idle()

    parent = api.get_job(parent_uuid)
    assert parent.state == DONE and parent.error is None
    assert parent.exit_status == 0 + 10 + 20 + 30
    final = api.get_budget(parent_uuid)
    assert final is not None and final["spent"]["tokens"] == 4 * PER_REPLY


def test_fail_policy_ends_the_job_with_a_clear_error(api: statek.StatekClientAPI) -> None:
    _provider()
    agent = statek.Agent("solo", "You answer.")
    job = api.submit_new_job(agent, {"i": 1})
    api.set_budget(job, tokens=100, policy="fail")
    _run_until_idle()
    assert job.state == DONE
    assert job.exit_status is None
    assert job.error == (f"budget exhausted: tokens 150 of 100 (budget of job {job.uuid}, "
                         "policy 'fail')")


def test_budget_from_job_params_and_settings_policy(api: statek.StatekClientAPI) -> None:
    _provider()
    agent = statek.Agent("solo", "You answer.")
    held = api.submit_new_job(agent, {"i": 2}, budget={"tokens": 100})
    with pytest.raises(ValueError, match=r"job_params\['budget'\]: budget tokens must be >= 0"):
        api.submit_new_job(agent, {"i": 3}, budget={"tokens": -5})  # refused at submit
    _run_until_idle()
    assert held.budget_exhausted is not None and held.budget_exhausted.policy == "suspend"
    api.raise_budget(held, tokens=100)
    _run_until_idle()
    assert held.exit_status == 20


def test_steps_budget_holds_the_next_step(api: statek.StatekClientAPI) -> None:
    _provider()
    agent = statek.Agent("solo", "You answer.")
    job = api.submit_new_job(agent, {"i": 4})
    api.set_budget(job, steps=1)  # asking the model is one step, running its code another
    _run_until_idle()
    held = job.budget_exhausted
    assert (held.kind, held.spent, held.limit) == ("steps", 1, 1)
    assert "BudgetExhausted: steps 1 of 1" in "".join(job.console)
    api.raise_budget(job.uuid, steps=1)
    _run_until_idle()
    assert job.exit_status == 40


def test_wall_time_budget_holds_until_raised(api: statek.StatekClientAPI) -> None:
    _provider()
    agent = statek.Agent("solo", "You answer.")
    job = api.submit_new_job(agent, {"i": 5})
    api.set_budget(job, seconds=60)
    job.budget.started_at = time.time() - 120  # its minute is long over
    _run_until_idle()
    held = job.budget_exhausted
    assert held.kind == "seconds" and held.limit == 60 and held.spent >= 120
    assert job.turns == 0  # held before its first step ran
    api.raise_budget(job, seconds=3600)
    _run_until_idle()
    assert job.exit_status == 50


@pytest.mark.usefixtures("execution_mode")
def test_set_budget_is_a_job_function_in_both_modes(api: statek.StatekClientAPI) -> None:
    """(Whether the child's first step runs before or after the parent's next statement
    depends on the mode: under isolation="process" the parent's statements are round trips
    and the child may already have run, so only the call itself is compared here.)"""
    _provider()
    child = statek.Agent("child", "You answer with code.")
    parent = statek.Agent("parent", "You delegate.")
    code = ("kid = delegate(child, i=6)\n"
            "print(set_budget(kid, tokens=100)['limits']['tokens'])\nexit(0)")
    job = api.submit_new_job(parent, {"child": child}, warmup_code=code)
    _run_until_idle()
    assert job.error is None and job.console == ["100\n"]
    (kid,) = _children(api, job.uuid)
    assert api.get_budget(kid)["limits"]["tokens"] == 100


def test_parent_gives_a_child_its_own_budget(api: statek.StatekClientAPI) -> None:
    _provider()
    child = statek.Agent("child", "You answer with code.")
    parent = statek.Agent("parent", "You delegate.")
    code = "kid = delegate(child, i=6)\nset_budget(kid, tokens=100)\nexit(kid.value)"
    job = api.submit_new_job(parent, {"child": child}, warmup_code=code)
    api.set_budget(job, tokens=10_000)
    _run_until_idle()
    (kid,) = _children(api, job.uuid)
    held = kid.budget_exhausted
    assert (held.kind, held.owner, held.limit) == ("tokens", kid.uuid, 100)
    assert api.get_budget(job)["spent"]["tokens"] == PER_REPLY  # counted on the parent too
    assert job.budget_exhausted is None  # the parent waits on its child, not on a budget
    api.raise_budget(kid, tokens=100)  # the child's own budget (the parent's is not touched)
    assert api.get_budget(job)["limits"]["tokens"] == 10_000
    _run_until_idle()
    assert job.exit_status == 60


def test_cancelling_a_held_job_ends_it(api: statek.StatekClientAPI) -> None:
    _provider()
    agent = statek.Agent("solo", "You answer.")
    job = api.submit_new_job(agent, {"i": 7})
    api.set_budget(job, tokens=1)
    _run_until_idle()
    assert job.budget_exhausted is not None
    assert api.cancel_job(job)
    assert job.state == DONE and job.budget_exhausted is None
    api.raise_budget(job, tokens=1000)  # nothing to resume: it stays cancelled
    assert job.state == DONE


@pytest.mark.parametrize("kwargs, message", [
    ({"tokens": 1.5}, "budget tokens must be an int, not 1.5"),
    ({"cost": float("nan")}, "budget cost must be >= 0 and finite"),
    ({"policy": "explode"}, "budget policy must be 'suspend' or 'fail', not 'explode'"),
])
def test_bad_limits_are_refused(api: statek.StatekClientAPI, kwargs: dict[str, object],
                                message: str) -> None:
    job = api.submit_new_job(statek.Agent("solo"), {})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        api.set_budget(job, **kwargs)  # type: ignore[arg-type]
    assert job.budget is None

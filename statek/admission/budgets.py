"""Durable, hierarchical budgets: checking, charging, holding and releasing jobs.

Where a step meets its budgets (statek.execution.step):

* `may_run` at the start of a step: a job whose budget (or any budget above it) ran out is
  held before it runs anything; otherwise one step is charged to each node up the tree. A job
  with no budget pays one attribute read per step (a budget given to it while a step runs
  applies from its next step).
* `charge_reply`, then `check_after_reply`, once a model reply's usage is recorded: its
  tokens and cost (the settings' `model_prices`) are charged up the tree; a budget that ran
  out holds the job at once (the reply's code, already paid for, runs when it resumes).

Holding follows the policy of the budget that ran out: "suspend" (default, settings
`budget_policy`) makes the job SUSPENDED on a future that only its own end can resolve, so no
scheduler polls it, and registers it in the budget's `waiting`; "fail" ends it with an error.
Raising a budget (`raise_budget`, `set_budget`: the client API, the HTTP API, the CLI, or a
parent's job code) re-checks the jobs waiting on it and resumes those now within budget
through `Job.resume`, i.e. the scheduler's `job_runnable` signal.

Delegation: a child runs under its parent's node (it shares the remaining tree budget); the
parent may give it a budget of its own with the job function `set_budget(child, ...)`, which
still counts against every budget above it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import dbzero as db0

from statek import store
from statek.models.budget import (
    KINDS,
    Budget,
    BudgetExhausted,
    checked_limits,
    first_exhausted,
    is_held,
)
from statek.models.future import JOB, Future
from statek.models.status import SUSPENDED


# ---------------------------------------------------------------- prices
def price_of(model: str, input_tokens: int, output_tokens: int) -> float:
    """What a call to `model` cost, from the settings' `model_prices` (per million tokens;
    '*' prices any model not named; 0 when neither is there)."""
    prices = store.settings().model_prices
    if not prices:
        return 0.0
    found = prices.get(model) or prices.get("*")
    if found is None:
        return 0.0
    return (input_tokens * found[0] + output_tokens * found[1]) / 1_000_000


# ---------------------------------------------------------------- in a step
def may_run(step: Any) -> bool:
    """Whether the step may run (see the module docstring); False when the job was held."""
    job = step.job
    node = job.budget
    if node is None:
        params = step.defn.params
        spec = params.get("budget") if params else None
        if spec is None:
            return True
        node = _node_from_params(step, spec)
        if node is None:
            return False
    step.budget = node
    with store.transition():
        found = first_exhausted(node, time.time())
        if found is not None:
            _hold(step, found[0], found[1])
            return False
        while node is not None:
            node.spent_steps = int(node.spent_steps) + 1
            node = node.parent
    return True


def charge_reply(step: Any, node: Any, input_tokens: int, output_tokens: int) -> None:
    """Add a recorded reply's tokens and cost to `node` and every node above it (inside the
    reply's transition; a reply that ends the job is charged too)."""
    tokens = input_tokens + output_tokens
    if not tokens:
        return
    cost = price_of(step.resolve()[1], input_tokens, output_tokens)
    while node is not None:
        node.spent_tokens = int(node.spent_tokens) + tokens
        if cost:
            node.spent_cost = float(node.spent_cost) + cost
        node = node.parent


def check_after_reply(step: Any, node: Any) -> None:
    """Hold the job now if a budget ran out with the reply just charged (its code, already
    paid for, runs when the job resumes)."""
    found = first_exhausted(node, time.time())
    if found is not None:
        _hold(step, found[0], found[1])


def _node_from_params(step: Any, spec: Any) -> Any:
    """The job's own node made from the job param `budget` (a mapping of limits); None, with
    the job ended naming the problem, when the param is not a valid budget."""
    job = step.job
    try:
        if not isinstance(spec, Mapping):
            raise ValueError(f"job param 'budget' must be a mapping of limits, not "
                             f"{type(spec).__name__}")
        limits = checked_limits(spec, "job param 'budget'")
    except ValueError as exc:
        with store.transition():
            step.finish(error=str(exc))
        return None
    with store.transition():
        return _own_node(job, step.uuid, limits)


def _hold(step: Any, node: Any, why: BudgetExhausted) -> None:
    """Suspend the step's job on `node` (policy "suspend") or end it ("fail")."""
    job = step.job
    if why.policy == "fail":
        job.write_console(f"[statek] {why}; the job fails (budget policy 'fail')\n")
        step.finish(error=f"budget exhausted: {why.kind} {why.spent:g} of {why.limit:g} "
                          f"(budget of job {why.owner}, policy 'fail')")
        return
    job.write_console(f"[statek] {why}; suspended until the budget is raised\n")
    _suspend_on(job, step.uuid, node)
    step.result.suspended = True


def _suspend_on(job: Any, job_uuid: str, node: Any) -> None:
    """SUSPENDED on a future of the job itself (ready only once it is DONE: never polled,
    and its waiter key is dropped when the job ends), registered in `node.waiting`."""
    if job.awaiting is None:
        job.awaiting = Future(JOB, job, target=job)
    if job.state != SUSPENDED:
        job.set_status(SUSPENDED)
    job.budget_hold = node
    if node.waiting is None:
        node.waiting = {job_uuid: job}
    else:
        node.waiting[job_uuid] = job


# ---------------------------------------------------------------- raising
def _own_node(job: Any, job_uuid: str, limits: Mapping[str, Any]) -> Any:
    """The job's own node (made under the one it ran under if it has none), limits applied."""
    node = job.budget
    if node is None or str(node.owner) != job_uuid:
        policy = limits.get("policy", store.settings().budget_policy)
        node = Budget(job_uuid, parent=node, policy=policy)
        job.budget = node
    node.apply(limits)
    return node


def set_budget(job: Any, limits: Mapping[str, Any], where: str = "set_budget") -> dict[str, Any]:
    """Give `job` a budget of its own with these limits (absolute: tokens, cost, steps,
    seconds; 0 is no limit) and policy; jobs it delegates afterwards run under it. Held jobs
    now within budget resume. Returns the budget as `describe()` data."""
    checked = checked_limits(limits, where)
    job_uuid = str(db0.uuid(job))
    with store.transition():
        node = _own_node(job, job_uuid, checked)
        release(node)
        return node.describe()  # type: ignore[no-any-return]


def raise_budget(job: Any, amounts: Mapping[str, Any]) -> dict[str, Any]:
    """Add `amounts` (tokens, cost, steps, seconds) to the limits of the budget `job` runs
    under (its own, else the one it inherited: its tree's). Held jobs now within budget
    resume. Raises ValueError for a job without a budget or a kind that has no limit."""
    checked = {kind: amount for kind, amount in checked_limits(amounts, "raise_budget").items()
               if kind != "policy" and amount}
    job_uuid = str(db0.uuid(job))
    node = job.budget
    if node is None:
        raise ValueError(f"job {job_uuid} has no budget to raise (give it one with set_budget)")
    if not checked:
        raise ValueError(f"raise_budget: name at least one of {', '.join(KINDS)}")
    for kind in checked:
        if not getattr(node, kind):
            raise ValueError(f"raise_budget: the {kind} budget of job {node.owner} has no limit "
                             "to raise (set one with set_budget)")
    with store.transition():
        for kind, amount in checked.items():
            setattr(node, kind, getattr(node, kind) + amount)
        release(node)
        return node.describe()  # type: ignore[no-any-return]


def release(node: Any) -> int:
    """Re-check the jobs held by `node`: those within every budget above them resume (the
    scheduler hears `job_runnable`), the others move to the node still exhausted. Returns
    the jobs resumed. Callers hold a transition."""
    waiting = node.waiting
    if not waiting:
        return 0
    held = list(waiting.items())
    node.waiting = None
    now = time.time()
    resumed = 0
    for job_uuid, job in held:
        if not is_held(job, job.budget_hold):
            continue  # ended (cancelled) or resumed another way meanwhile
        found = first_exhausted(job.budget, now)
        if found is not None:
            _suspend_on(job, str(job_uuid), found[0])
            continue
        job.budget_hold = None
        job.awaiting = None
        job.resume()
        resumed += 1
    return resumed


def set_child_budget(parent: Any, child: Any, limits: Mapping[str, Any]) -> dict[str, Any]:
    """Job code's `set_budget(child, ...)`: `child` is the future `delegate()` returned (or
    the child job); only the job that delegated it may set its budget."""
    target = child
    if isinstance(child, Future):
        if child.kind != JOB:
            raise TypeError("set_budget() needs the future delegate() returned, not a "
                            f"{child.kind} future")
        target = child.target
    from statek.models.job import Job

    if not isinstance(target, Job) or target.parent is None or (
            db0.uuid(target.parent) != db0.uuid(parent)):
        raise TypeError("set_budget() takes a job this job delegated (the future delegate() "
                        "returned)")
    return set_budget(target, limits, "set_budget()")


def budget_info(job: Any) -> dict[str, Any] | None:
    """The budget `job` runs under as plain data (None without one), with `exhausted` set
    when the job is held (the budget that ran out, maybe one above)."""
    node = job.budget
    if node is None:
        return None
    data: dict[str, Any] = node.describe()
    held = job.budget_exhausted
    data["held"] = None if held is None else held.as_dict()
    return data


def budget_fields(job: Any) -> dict[str, Any]:
    """What a job's JSON says about budgets: `budget` (see `budget_info`) and, while a budget
    holds it, `budget_exhausted` (a BudgetExhausted as data; else None)."""
    held = job.budget_exhausted
    return {"budget": budget_info(job),
            "budget_exhausted": None if held is None else held.as_dict()}


def mark_held(rows: Any) -> None:
    """Give listing rows (job summaries) of jobs a budget holds their `budget_exhausted`; only
    SUSPENDED rows are looked up."""
    for row in rows:
        if row.get("status") == "SUSPENDED":
            held = db0.fetch(row["uuid"]).budget_exhausted
            if held is not None:
                row["budget_exhausted"] = held.as_dict()

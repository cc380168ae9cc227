"""Budgets: durable limits on what a job, and every job it delegates, may spend.

A `Budget` is one node of a tree that mirrors the delegation tree: a job runs under one node
(`job.budget`), its own or its parent's, and every node points to the node of the job that
made it (`parent`). Spending (tokens, cost, steps) is added to the node and to each node above
it, so a child's spending counts against every ancestor's budget. Wall time runs from the
node's creation. A limit of 0 is no limit. Jobs suspended because a node ran out wait in its
`waiting` dict (uuid -> job) until someone raises it (`statek.admission.budgets`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dbzero as db0

#: The four kinds of budget, in the order they are checked and reported.
KINDS = ("tokens", "cost", "steps", "seconds")
POLICIES = ("suspend", "fail")


@dataclass(frozen=True, slots=True)
class BudgetExhausted:
    """Why a job is held: which budget (`kind`) of which job's node (`owner`) ran out."""

    kind: str
    spent: float
    limit: float
    owner: str
    policy: str

    def as_dict(self) -> dict[str, Any]:
        return {"state": "BudgetExhausted", "budget": self.kind, "spent": self.spent,
                "limit": self.limit, "owner": self.owner, "policy": self.policy}

    def __str__(self) -> str:
        return (f"BudgetExhausted: {self.kind} {_num(self.spent)} of {_num(self.limit)} "
                f"(budget of job {self.owner}, policy {self.policy})")


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def checked_limits(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The budget limits in `values` (tokens, cost, steps, seconds, policy), checked: a clear
    ValueError names a bad key or value. Values that are None are left out."""
    unknown = sorted(set(values) - {*KINDS, "policy"})
    if unknown:
        raise ValueError(f"{where}: unknown budget key {unknown[0]!r} "
                         f"(allowed: {', '.join(KINDS)}, policy)")
    out: dict[str, Any] = {}
    for kind in KINDS:
        value = values.get(kind)
        if value is None:
            continue
        integral = kind in ("tokens", "steps")
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                integral and not isinstance(value, int)):
            need = "an int" if integral else "a number"
            raise ValueError(f"{where}: budget {kind} must be {need}, not {value!r}")
        if not math.isfinite(value) or value < 0 or (integral and value >= 2**62):
            raise ValueError(f"{where}: budget {kind} must be >= 0 and finite, not {value!r}")
        out[kind] = int(value) if integral else float(value)
    policy = values.get("policy")
    if policy is not None:
        if policy not in POLICIES:
            raise ValueError(f"{where}: budget policy must be 'suspend' or 'fail', "
                             f"not {policy!r}")
        out["policy"] = policy
    return out


@db0.memo(id="statek/Budget")
class Budget:
    """Limits and spending of one job's budget (0: no limit); see the module docstring."""

    # class-level defaults: a node writes only what differs
    tokens = 0
    cost = 0.0
    steps = 0
    seconds = 0.0
    spent_tokens = 0
    spent_cost = 0.0
    spent_steps = 0
    policy = "suspend"
    parent: Any = None  # the node of the delegating job's budget
    waiting: Any = None  # job uuid -> job suspended because this node ran out

    def __init__(self, owner: str, parent: Any = None, policy: str = "suspend") -> None:
        self.owner = owner  # the uuid of the job whose budget this is (a str: no cycle)
        self.started_at = time.time()
        if parent is not None:
            self.parent = parent
        if policy != "suspend":
            self.policy = policy

    def apply(self, limits: Mapping[str, Any]) -> None:
        """Set the limits (and policy) given in checked `limits`."""
        for key, value in limits.items():
            if getattr(self, key) != value:
                setattr(self, key, value)

    def exhausted(self, now: float) -> BudgetExhausted | None:
        """The first of this node's budgets that ran out, or None."""
        found: tuple[str, float, float] | None = None
        tokens = self.tokens
        if tokens and self.spent_tokens >= tokens:
            found = ("tokens", int(self.spent_tokens), int(tokens))
        elif (cost := self.cost) and self.spent_cost >= cost:
            found = ("cost", float(self.spent_cost), float(cost))
        elif (steps := self.steps) and self.spent_steps >= steps:
            found = ("steps", int(self.spent_steps), int(steps))
        elif (seconds := self.seconds) and now - self.started_at >= seconds:
            found = ("seconds", round(now - float(self.started_at), 3), float(seconds))
        if found is None:
            return None
        return BudgetExhausted(found[0], found[1], found[2], str(self.owner), str(self.policy))

    def describe(self, now: float | None = None) -> dict[str, Any]:
        """Limits, spending and state as plain data (the API's `budget` field)."""
        now = time.time() if now is None else now
        held = self.exhausted(now)
        return {
            "owner": str(self.owner),
            "limits": {"tokens": int(self.tokens), "cost": float(self.cost),
                       "steps": int(self.steps), "seconds": float(self.seconds)},
            "spent": {"tokens": int(self.spent_tokens), "cost": float(self.spent_cost),
                      "steps": int(self.spent_steps),
                      "seconds": round(now - float(self.started_at), 3)},
            "policy": str(self.policy),
            "parent_owner": None if self.parent is None else str(self.parent.owner),
            "exhausted": None if held is None else held.as_dict(),
            "waiting": 0 if self.waiting is None else len(self.waiting),
        }


def first_exhausted(node: Any, now: float) -> tuple[Any, BudgetExhausted] | None:
    """The nearest node from `node` up to the tree's top that ran out, with why; or None."""
    while node is not None:
        held = node.exhausted(now)
        if held is not None:
            return node, held
        node = node.parent
    return None


def is_held(job: Any, hold: Any) -> bool:
    """Whether `job` (whose `budget_hold` is `hold`) is suspended on its budget: a job that
    ended (cancelled, quarantined) and was re-opened later may keep a stale `budget_hold`
    while it waits on something else."""
    if hold is None:
        return False
    from statek.models.future import JOB
    from statek.models.status import SUSPENDED

    if job.state != SUSPENDED:
        return False
    awaiting = job.awaiting
    return bool(awaiting is not None and awaiting.kind == JOB
                and db0.uuid(awaiting.target) == db0.uuid(job))

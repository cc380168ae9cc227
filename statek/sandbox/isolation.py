"""What keeps one job's code away from other jobs and from its own bookkeeping.

* **Persisted objects** (dbzero memo objects: futures, agents, jobs) are read through
  `memo_attribute`: statek's own classes expose a short allow-list each (a future's value, an
  agent's role), nothing that leads to the job's status, chat log, definition, parent or the
  store root; containers read from any persisted object come back as plain copies, so job code
  can never write into storage it does not own (its own locals are the exception: writable).
* **Process-global module state** reachable from allowed modules is per job: `random`'s
  module-level functions use a generator of the job's own (`job_random`), and
  `decimal.getcontext()` hands out a context private to the running step.
"""

from __future__ import annotations

import decimal
import random
import sys
from contextvars import ContextVar
from typing import Any

import dbzero as db0

from statek.models import containers
from statek.sandbox.audit import job_globals, refuse

#: Attributes job code may read on statek's persisted classes (by "module.qualname").
#: Anything else is refused; a class missing here exposes nothing.
MEMO_ALLOWED: dict[str, frozenset[str]] = {
    "statek.models.future.Future": frozenset({"value", "done", "winner", "kind"}),
    "statek.models.agent.Agent": frozenset({"role", "description", "tools"}),
    "statek.models.agent.SupervisedAgent": frozenset({"role", "description", "tools"}),
    "statek.models.job.Job": frozenset({"uuid", "status", "is_done", "exit_status", "error"}),
}

#: Key under which JobFunctions puts its per-job state provider in a job's builtins.
JOB_STATE_KEY = "__statek_job_state__"


def plain_copy(value: Any) -> Any:
    """`value` with every dbzero container replaced by a plain copy job code may change
    (memo objects are kept: job code reaches them only through `memo_attribute`)."""
    return containers.plain_copy(value, mutable_bytes=True)


# --- persisted (memo) objects ---------------------------------------------------------------

#: type -> None (not a memo class) | frozenset (allowed names) | True (foreign memo class)
MEMO_RULES: dict[type, frozenset[str] | bool | None] = {}


def memo_rule(obj: object) -> frozenset[str] | bool | None:
    """None for objects that are not persisted; else what job code may read on them: a set of
    names (statek's classes) or True (an application's own memo class: public attributes)."""
    cls = type(obj)
    rule = MEMO_RULES.get(cls, False)
    if rule is not False:
        return rule
    if not db0.is_memo(obj):
        rule = None
    else:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in MEMO_ALLOWED:
            rule = MEMO_ALLOWED[name]
        elif cls.__module__.partition(".")[0] == "statek":
            rule = frozenset()
        else:
            rule = True
    if len(MEMO_RULES) < 10_000:  # job-defined classes come and go; never unbounded
        MEMO_RULES[cls] = rule
    return rule


def memo_attribute(obj: Any, name: str, rule: frozenset[str] | bool) -> Any:
    """`obj.name` as job code sees it: allowed names only, containers copied."""
    if not isinstance(rule, bool) and name not in rule:
        cls = type(obj)
        shown = ", ".join(sorted(rule)) or "none"  # rule: the names a statek class exposes
        refuse(
            f"attribute {name!r} of {cls.__name__} objects is not accessible in restricted "
            f"mode (readable: {shown})"
        )
    return plain_copy(getattr(obj, name))


# --- per-job module state -------------------------------------------------------------------

_RANDOM_FUNCTIONS = frozenset(
    name
    for name, value in vars(random).items()
    if not name.startswith("_") and getattr(value, "__self__", None) is random._inst
)

#: Fallback generators of namespaces made without JobFunctions (plain sandbox use).
_NAMESPACE_RANDOM_KEY = "__statek_random__"


def is_random_function(module_name: str, name: str) -> bool:
    return module_name == "random" and name in _RANDOM_FUNCTIONS


def job_random_function(name: str) -> Any:
    """``random.<name>`` for the running job: bound to that job's own generator."""
    g = job_globals(sys._getframe(1))
    if g is None:
        return getattr(random, name)  # host code reaching it through a view
    state = g.get("__builtins__", {}).get(JOB_STATE_KEY) if isinstance(g, dict) else None
    generator = state.job_random() if state is not None else None
    if generator is None:
        generator = g.get(_NAMESPACE_RANDOM_KEY)
        if generator is None:
            generator = g[_NAMESPACE_RANDOM_KEY] = random.Random()
    return getattr(generator, name)


#: (owner, context set for it, context it replaced) of the step running in this context.
_step_decimal: ContextVar[tuple[object, decimal.Context, decimal.Context] | None] = ContextVar(
    "statek_step_decimal", default=None
)


def _decimal_owner() -> object:
    g = job_globals(sys._getframe(1))
    if g is None:
        return None
    state = g.get("__builtins__", {}).get(JOB_STATE_KEY)
    owner = state.owner() if state is not None else None
    return owner if owner is not None else g


def job_getcontext() -> decimal.Context:
    """``decimal.getcontext()`` for job code: a context of the running step's own, so a
    change to it (``getcontext().prec = 3``) never reaches another job or the host."""
    owner = _decimal_owner()
    current = decimal.getcontext()
    if owner is None:
        return current
    mark = _step_decimal.get()
    if mark is not None and mark[0] is owner and mark[1] is current:
        return current
    context = decimal.Context()  # a copy of the default template, not the shared one
    decimal.setcontext(context)
    _step_decimal.set((owner, context, current))
    return context


def release_decimal_context(owner: object) -> None:
    """Before `owner`'s code runs: drop a decimal context another job set up in this same
    execution context (a step normally runs in a task of its own, so this is rare)."""
    mark = _step_decimal.get()
    if mark is not None and mark[0] is not owner:
        if decimal.getcontext() is mark[1]:
            decimal.setcontext(mark[2])
        _step_decimal.set(None)

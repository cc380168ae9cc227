"""Crossing job boundaries: other jobs, the job's own bookkeeping, agents, global module state,
and the delegate budgets. Each case checks the attack was refused and the target unchanged."""

from __future__ import annotations

import decimal
import random
from typing import Any

import pytest

import statek
from statek import store
from statek.executors.utils import run_job_step
from statek.models.status import JobStatus
from tests.store.security.conftest import InProcessRunner


@pytest.fixture
def helper(statek_store: str) -> statek.SupervisedAgent:
    """An agent whose jobs run a warmup that exits at once (what `delegate` starts)."""
    agent = statek.SupervisedAgent("helper", "You help.")
    agent.update_warmup_def("exit('helped')")
    return agent


@pytest.fixture
def victim(api: statek.StatekClientAPI, agent: statek.Agent) -> Any:
    """Another job with locals, not started."""
    return api.submit_new_job(agent, {"secret": "s3cret", "data": [1, 2]})


# fmt: off
#: Reached from a future `f` (from delegate/sleep/wait_message): its owner is the job itself.
FUTURE_ATTACKS = [
    ("owner", "f.owner", "'owner'"),
    ("owner-set-status", "f.owner.set_status('DONE')", "'owner'"),
    ("owner-cancel", "f.owner.cancel()", "'owner'"),
    ("owner-jobdef", "f.owner.jobdef.agent", "'owner'"),
    ("owner-chat", "f.owner.chat", "'owner'"),
    ("owner-log", "f.owner.log(('turn',))", "'owner'"),
    ("owner-limits", "f.owner.exceptions", "'owner'"),
    ("target", "f.target", "'target'"),
    ("target-bind-locals", "f.target.bind_locals({'x': 1})", "'target'"),
    ("parts", "f.parts", "'parts'"),
    ("condition", "f.condition", "'condition'"),
    ("args", "f.args", "'args'"),
    ("result", "f.result", "'result'"),
    ("resolve", "f._resolve(1)", "'_resolve'"),
    ("is-ready", "f.is_ready()", "'is_ready'"),
    ("wake-keys", "list(f.wake_keys())", "'wake_keys'"),
    ("deadline", "f.deadline", "'deadline'"),
    ("write-resolved", "f.resolved = True", "cannot modify"),
    ("write-result", "f.result = 'forged'", "cannot modify"),
    ("hasattr-owner", "hasattr(f, 'owner')", "'owner'"),
    ("class-walk", "f.__class__", "'__class__'"),
    ("dict", "f.__dict__", "'__dict__'"),
]
# fmt: on

_MAKERS = {"delegate": "f = delegate(helper)", "sleep": "f = sleep(3600)",
           "message": "f = wait_message()"}


@pytest.mark.parametrize("maker", sorted(_MAKERS))
@pytest.mark.parametrize(("attack", "expected"),
                         [pytest.param(a, e, id=i) for i, a, e in FUTURE_ATTACKS])
async def test_future_exposes_only_its_value(runner: InProcessRunner, helper: Any, maker: str,
                                             attack: str, expected: str) -> None:
    if maker != "delegate" and attack.startswith("f.target"):
        pytest.skip("only a delegate future has a target")
    attempt = await runner.run(f"{_MAKERS[maker]}\n{attack}\nexit('ESCAPED')", {"helper": helper})
    attempt.refused(expected)
    assert attempt.job.status == JobStatus.DONE


# fmt: off
AGENT_ATTACKS = [
    ("set-system-prompt", "helper.set_system_prompt('pwned')", "'set_system_prompt'"),
    ("write-system-prompt", "helper.system_prompt = 'pwned'", "cannot modify"),
    ("read-system-prompt", "helper.system_prompt", "'system_prompt'"),
    ("update-warmup", "helper.update_warmup_def('exit(1)')", "'update_warmup_def'"),
    ("warmup-blocks", "helper.warmup_blocks", "'warmup_blocks'"),
    ("metadata-write", "helper.metadata['x'] = 1", "'metadata'"),
    ("tool-names", "helper.tool_names", "'tool_names'"),
    ("warmup-externals", "helper.warmup_externals", "'warmup_externals'"),
    ("augmented-prompt", "helper.system_prompt += 'x'", "'system_prompt'"),
]
# fmt: on


@pytest.mark.parametrize(("attack", "expected"),
                         [pytest.param(a, e, id=i) for i, a, e in AGENT_ATTACKS])
async def test_agent_is_read_only(runner: InProcessRunner, helper: Any, attack: str,
                                  expected: str) -> None:
    attempt = await runner.run(f"{attack}\nexit('ESCAPED')", {"helper": helper})
    attempt.refused(expected)
    assert helper.system_prompt == "You help."
    assert helper.warmup_code == "exit('helped')"
    assert dict(helper.metadata) == {}


async def test_agent_exposes_what_a_job_needs(runner: InProcessRunner, helper: Any) -> None:
    attempt = await runner.run("exit([helper.role, helper.description, list(helper.tools)])",
                               {"helper": helper})
    assert list(attempt.exit_status) == ["helper", "", []], attempt.text


# fmt: off
VICTIM_ATTACKS = [
    ("locals", "other.locals['secret']", "'locals'"),
    ("vars", "other.vars", "'vars'"),
    ("inline-vars", "other.inline_vars", "'inline_vars'"),
    ("bind-locals", "other.bind_locals({'secret': 'overwritten'})", "'bind_locals'"),
    ("locals-dict", "other.locals_dict()", "'locals_dict'"),
    ("set-status", "other.set_status('DONE')", "'set_status'"),
    ("write-state", "other.state = 4", "cannot modify"),
    ("finish", "other.finish('forged')", "'finish'"),
    ("cancel", "other.cancel()", "'cancel'"),
    ("push-message", "other.push_user_message('hi')", "'push_user_message'"),
    ("chat-log", "other.chat_log", "'chat_log'"),
    ("console", "other.console", "'console'"),
    ("write-console", "other.write_console('forged')", "'write_console'"),
    ("jobdef", "other.jobdef", "'jobdef'"),
    ("agent", "other.agent", "'agent'"),
    ("parent", "other.parent", "'parent'"),
    ("definitions", "other.definitions", "'definitions'"),
    ("input-tokens", "other.input_tokens", "'input_tokens'"),
    ("harness-counter", "other.consecutive_exceptions = 0", "cannot modify"),
    ("sites", "other.sites", "'sites'"),
]
# fmt: on


@pytest.mark.parametrize(("attack", "expected"),
                         [pytest.param(a, e, id=i) for i, a, e in VICTIM_ATTACKS])
async def test_other_job_is_out_of_reach(runner: InProcessRunner, victim: Any, attack: str,
                                         expected: str) -> None:
    attempt = await runner.run(f"{attack}\nexit('ESCAPED')", {"other": victim})
    attempt.refused(expected)
    assert victim.status == JobStatus.READY
    assert dict(victim.locals) == {"secret": "s3cret", "data": [1, 2]}
    assert victim.console == [] and victim.messages == []


async def test_other_job_exposes_only_its_outcome(runner: InProcessRunner, victim: Any) -> None:
    attempt = await runner.run("exit([other.uuid, str(other.status), other.is_done, "
                               "other.exit_status, other.error])", {"other": victim})
    assert list(attempt.exit_status) == [victim.uuid, str(JobStatus.READY), False, None, None]


async def test_params_are_read_only(runner: InProcessRunner) -> None:
    attempt = await runner.run("params['max_turns'] = 1000\nexit('ESCAPED')")
    attempt.refused("does not support item assignment", "cannot modify")


# --- delegate: shared variables are copies --------------------------------------------------


async def _child_of(parent: Any) -> Any:
    future = parent.locals["f"]
    return future.target


async def test_child_cannot_change_parent_locals(runner: InProcessRunner,
                                                 statek_store: str) -> None:
    child_agent = statek.SupervisedAgent("child", "")
    child_agent.update_warmup_def("data.append(99)\ncfg['k'] = 'child'\nexit(list(data))")
    parent = runner.submit("data = [1, 2]\ncfg = {'k': 'parent'}\n"
                           "f = delegate(kid, data=data, cfg=cfg)\nv = f.value\n"
                           "exit([data, cfg, v])",
                           {"kid": child_agent})
    await run_job_step(parent)  # suspends on f.value
    child = await _child_of(parent)
    assert await run_job_step(child)
    assert list(child.exit_status) == [1, 2, 99]
    assert list(parent.locals["data"]) == [1, 2]
    assert dict(parent.locals["cfg"]) == {"k": "parent"}
    await run_job_step(parent)
    data, cfg, value = parent.exit_status
    assert list(data) == [1, 2] and dict(cfg) == {"k": "parent"} and list(value) == [1, 2, 99]


async def test_parent_cannot_change_child_result(runner: InProcessRunner,
                                                 statek_store: str) -> None:
    child_agent = statek.SupervisedAgent("child", "")
    child_agent.update_warmup_def("exit({'n': 1, 'items': [1]})")
    parent = runner.submit("f = delegate(kid)\nv = f.value\nv['n'] = 'forged'\n"
                           "v['items'].append('forged')\nexit(f.value)", {"kid": child_agent})
    await run_job_step(parent)
    child = await _child_of(parent)
    await run_job_step(child)
    await run_job_step(parent)
    assert dict(child.exit_status) == {"n": 1, "items": [1]}
    assert dict(parent.exit_status)["n"] == 1


async def test_delegate_needs_an_agent(runner: InProcessRunner, victim: Any) -> None:
    attempt = await runner.run("delegate(other)\nexit('ESCAPED')", {"other": victim})
    attempt.refused("delegate() needs an agent")


# --- delegate budgets -----------------------------------------------------------------------


@pytest.mark.parametrize("bomb", [
    "while True:\n    try:\n        delegate(helper)\n    except Exception:\n        pass",
    # swallowing the signal itself only delays it to the end of the statement
    "for i in range(50):\n    try:\n        delegate(helper)\n    except BaseException:\n"
    "        pass\nexit('ESCAPED')",
    "fs = [delegate(helper) for i in range(10**6)]",
], ids=["loop", "swallowed", "comprehension"])
async def test_delegate_fork_bomb_ends_the_job_naming_the_budget(
        runner: InProcessRunner, helper: Any, monkeypatch: pytest.MonkeyPatch,
        bomb: str) -> None:
    monkeypatch.setattr(store.settings(), "max_delegates_per_step", 5)
    attempt = await runner.run(bomb, {"helper": helper})
    assert attempt.job.status == JobStatus.DONE
    assert attempt.exit_status != "ESCAPED"
    assert attempt.error is not None and "max_delegates_per_step=5" in attempt.error
    assert int(getattr(attempt.job, "tree_delegated", 0)) == 5


async def test_delegate_budget_per_tree_counts_descendants(
        runner: InProcessRunner, statek_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.settings(), "max_delegates_per_tree", 3)
    spawner = statek.SupervisedAgent("spawner", "")
    spawner.update_warmup_def("a = delegate(me)\nb = delegate(me)\nexit('spawned')")
    parent = runner.submit("f = delegate(kid, me=kid)\ng = delegate(kid, me=kid)\n"
                           "exit('parent done')", {"kid": spawner})
    await run_job_step(parent)
    assert parent.exit_status == "parent done"
    first = parent.locals["f"].target
    await run_job_step(first)  # the tree's third child, then the budget is spent
    assert first.error is not None and "max_delegates_per_tree=3" in first.error
    second = parent.locals["g"].target
    await run_job_step(second)
    assert second.error is not None and "max_delegates_per_tree=3" in second.error


async def test_a_delegated_job_knows_its_trees_root_without_walking_parents(
        runner: InProcessRunner, statek_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each delegate() walked the chain up to the root: a 4,000-deep chain took 45 s, all of
    it in the worker's thread (found by a new user's trial). A job delegated before jobs
    recorded their root (tree_root unset) still finds it by walking."""
    monkeypatch.setattr(store.settings(), "max_delegates_per_tree", 3)
    chain = statek.SupervisedAgent("chain", "")
    chain.update_warmup_def("c = delegate(me, me=me)\nexit('passed on')")
    top = runner.submit("c = delegate(kid, me=kid)\nexit('top')", {"kid": chain})
    await run_job_step(top)
    child = top.locals["c"].target
    await run_job_step(child)
    grandchild = child.locals["c"].target
    assert child.tree_root == top and grandchild.tree_root == top
    assert int(top.tree_delegated) == 2
    grandchild.tree_root = None  # as stored before jobs knew their root
    await run_job_step(grandchild)  # the tree's third: the root still counts it
    assert int(top.tree_delegated) == 3
    great = grandchild.locals["c"].target
    await run_job_step(great)
    assert great.error is not None and "max_delegates_per_tree=3" in great.error


# --- process-global module state ------------------------------------------------------------


async def test_random_seed_does_not_leak_to_other_jobs_or_the_host(
        runner: InProcessRunner) -> None:
    seeded = random.Random(1234).random()
    first = await runner.run("import random\nrandom.seed(1234)\nexit(random.random())")
    assert first.exit_status == seeded  # the job's own generator, seeded by the job
    other = await runner.run("import random\nexit(random.random())")
    assert other.exit_status != random.Random(1234).random() or other.exit_status != seeded
    assert random.random() != random.Random(1234).random()


async def test_random_state_is_per_job(runner: InProcessRunner) -> None:
    first = await runner.run("from random import seed, getstate\nseed(7)\nexit('ok')")
    assert first.exit_status == "ok"
    other = await runner.run("import random\nx = random.random()\nexit(x)")
    assert other.exit_status != random.Random(7).random()


async def test_decimal_context_does_not_leak(runner: InProcessRunner) -> None:
    host_prec = decimal.getcontext().prec
    first = await runner.run("import decimal\ndecimal.getcontext().prec = 3\n"
                             "decimal.getcontext().traps[decimal.DivisionByZero] = False\n"
                             "exit(str(decimal.Decimal(1) / decimal.Decimal(3)))")
    assert first.exit_status == "0.333"
    other = await runner.run("import decimal\nexit(str(decimal.Decimal(1) / decimal.Decimal(3)))")
    assert other.exit_status == str(decimal.Decimal(1) / decimal.Decimal(3))
    trapped = await runner.run("import decimal\nexit(str(decimal.Decimal(1) / 0))")
    assert trapped.error is not None and "DivisionByZero" in trapped.error
    assert decimal.getcontext().prec == host_prec


# fmt: off
GLOBAL_STATE = [
    ("decimal-setcontext", "import decimal\ndecimal.setcontext(decimal.Context(prec=2))",
     "decimal.setcontext"),
    ("decimal-default-context", "import decimal\ndecimal.DefaultContext.prec = 2",
     "DefaultContext"),
    ("time-tzset", "import time\ntime.tzset()", "time.tzset"),
    ("module-write", "import math\nmath.pi = 3", "cannot modify module"),
    ("module-augmented", "import functools\nfunctools.WRAPPER_ASSIGNMENTS += ('x',)",
     "cannot modify"),
    ("host-class-write", "import json\njson.JSONEncoder.item_separator = ';'", "cannot modify"),
    ("random-class-write", "import random\nrandom.Random.random = None", "cannot modify"),
    ("abc-register", "import collections\ncollections.abc.Mapping.register(int)",
     "collections.abc"),
    ("textwrap-whitespace", "import textwrap\ntextwrap.TextWrapper.unicode_whitespace_trans",
     "unicode_whitespace_trans"),
    ("ordereddict-class", "import collections\ncollections.OrderedDict.x = 1", "cannot modify"),
]
# fmt: on


@pytest.mark.parametrize(("source", "expected"),
                         [pytest.param(s, e, id=i) for i, s, e in GLOBAL_STATE])
async def test_global_module_state_is_out_of_reach(runner: InProcessRunner, source: str,
                                                   expected: str) -> None:
    attempt = await runner.run(f"{source}\nexit('ESCAPED')")
    attempt.refused(expected)
    import json
    import math

    assert math.pi > 3.14 and json.JSONEncoder.item_separator == ", "

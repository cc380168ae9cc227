"""run_job_step, phase 4 (run code): job code runs statement by statement on stored locals."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dbzero as db0
import pytest

import statek
from statek import sandbox, worker_state
from statek.executors.utils import run_job_step
from statek.models.status import JobStatus
from statek.providers import ChatReply, ScriptedProvider, add_provider, remove_provider

pytestmark = pytest.mark.usefixtures("execution_mode")  # both modes

PROVIDER = "step-code"
KEPT = "scalar_namespaces"  # the per-job cache of namespaces kept between steps

Install = Callable[..., ScriptedProvider]


@pytest.fixture
def script(statek_store: str) -> Iterator[Install]:
    """Register a ScriptedProvider under PROVIDER for the test; removed afterwards."""

    def install(replies: Sequence[str | ChatReply] | Any, **kwargs: Any) -> ScriptedProvider:
        kwargs.setdefault("cycle", False)
        provider = ScriptedProvider(replies, **kwargs)
        add_provider(PROVIDER, provider)
        return provider

    yield install
    remove_provider(PROVIDER)


async def step(job: Any) -> bool:
    return await run_job_step(job, PROVIDER)


async def run_to_end(job: Any, limit: int = 20) -> int:
    """Step until the job completes; returns the number of steps taken."""
    for n in range(1, limit + 1):
        if await step(job):
            return n
    raise AssertionError(f"job not done after {limit} steps: {job.status} {job.console}")


def restart(db_root: Path, prefix: str) -> None:
    """What a worker restart looks like to the job: storage closed and opened again, and no
    in-process state (the side table of unstorable locals) left over: closing the store drops
    the worker's state owner."""
    statek.close()
    db0.init(dbzero_root=str(db_root))
    statek.init()
    statek.open_prefix(prefix, "rw")


# --- warmup, exit, echo -------------------------------------------------------------------------


async def test_warmup_blocks_run_in_one_step_and_exit(api: statek.StatekClientAPI,
                                                      agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"n": 5},
                             warmup_code="x = n * 2\nprint('x is', x)\n# %%\nexit(x + 1)")
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE
    assert job.exit_status == 11
    assert job.console == ["x is 10\n"]
    assert job.error is None
    assert job.locals["x"] == 10
    # a finished job has nothing to do: the next step is not a completion
    assert await run_job_step(job) is False


async def test_exit_statuses_and_statements_after_exit(api: statek.StatekClientAPI,
                                                       agent: statek.Agent) -> None:
    done = api.submit_new_job(agent, {}, warmup_code="exit({'a': [1, 2]})\nprint('never')")
    bare = api.submit_new_job(agent, {}, warmup_code="print('one')\nexit()\nprint('never')")
    assert await run_job_step(done) and await run_job_step(bare)
    assert dict(done.exit_status) == {"a": [1, 2]}
    assert done.console == []
    assert bare.exit_status is None and bare.status == JobStatus.DONE
    assert bare.console == ["one\n"]


async def test_exit_in_reply_code(api: statek.StatekClientAPI, agent: statek.Agent,
                                  script: Install) -> None:
    script(["y = 3\nprint(y)", "exit(y * 2)"])
    job = api.submit_new_job(agent, {})
    assert await step(job) is False  # request only
    assert await step(job) is False  # y = 3, print, request again
    assert job.console == ["3\n"]
    assert await step(job) is True
    assert job.exit_status == 6 and job.turns == 2


async def test_expression_statements_echo(api: statek.StatekClientAPI, agent: statek.Agent,
                                          script: Install) -> None:
    script(["1 + 2\nNone\n'abc'\nx = 5\nx\n[x, x]\nprint('p')", "exit(0)"])
    job = api.submit_new_job(agent, {})
    await run_to_end(job)
    assert job.console == ["3\n", "'abc'\n", "5\n", "[5, 5]\n", "p\n"]


# --- locals ------------------------------------------------------------------------------------


async def test_locals_persist_across_steps(api: statek.StatekClientAPI, agent: statek.Agent,
                                           script: Install) -> None:
    script(["a = n + 1\nb = 'text'\nc = {'k': [a]}",
            "a += 10\ndel b\nd = (a, c['k'][0])",
            "exit([a, d])"])
    job = api.submit_new_job(agent, {"n": 1})
    await step(job)
    await step(job)
    assert dict(job.locals) == {"n": 1, "a": 2, "b": "text", "c": {"k": [2]}}
    await step(job)
    assert set(job.locals) == {"n", "a", "c", "d"}
    assert job.locals["a"] == 12 and tuple(job.locals["d"]) == (12, 2)
    assert await step(job) is True
    assert [job.exit_status[0], tuple(job.exit_status[1])] == [12, (12, 2)]


async def test_in_place_mutation_of_persisted_containers(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install, db_root: Path,
        statek_store: str) -> None:
    script(["xs = [1, 2]\nd = {'inner': []}",
            "xs.append(3)\nd['inner'].append('a')\nd['new'] = 1",
            "xs.extend([4, 5, 6])\nxs[0] = 0\nxs[1] += 10\nd['new'] += 1\ndel xs[-1]",
            "exit(len(xs))"])
    job = api.submit_new_job(agent, {})
    uuid = job.uuid
    for _ in range(4):
        await step(job)
    assert list(job.locals["xs"]) == [0, 12, 3, 4, 5], job.console
    inner = job.locals["d"]
    assert list(inner["inner"]) == ["a"] and inner["new"] == 2
    del job, inner
    restart(db_root, statek_store)
    job = statek.StatekClientAPI().get_job(uuid)
    assert list(job.locals["xs"]) == [0, 12, 3, 4, 5]
    assert list(job.locals["d"]["inner"]) == ["a"]
    assert await step(job) is True and job.exit_status == 5


async def test_unstorable_local_stays_usable_within_the_process(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install) -> None:
    script(["g = (i * i for i in range(5))\nprint(next(g))",
            "print(next(g))\nprint(next(g))",
            "exit(list(g))"])
    job = api.submit_new_job(agent, {})
    await run_to_end(job)
    assert job.console == ["0\n", "1\n", "4\n"]
    assert list(job.exit_status) == [9, 16]
    assert "g" not in job.locals


async def test_strings_dbzero_cannot_store_never_reach_it(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install,
        execution_mode: str) -> None:
    """A lone surrogate in a tuple crashes dbzero 0.7.0 (the whole worker): such values are
    kept in memory like other unstorable ones, printed with escapes, and exited as repr."""
    script(["t = ('a\\ud800',)\ns = 'b\\udfff'\nprint(s)\nn = len(t) + len(s)",
            "exit(t[0])"])
    job = api.submit_new_job(agent, {})
    await run_to_end(job)
    assert job.locals["n"] == 3 and "t" not in job.locals and "s" not in job.locals
    assert "b\\udfff\n" in job.console
    notes = [line for line in job.console if "kept in memory only" in line]
    if execution_mode == "in-process":  # an executor keeps them in its own namespace
        assert [note.split()[1] for note in notes] == ["t", "s"]
    assert job.exit_status == repr("a\ud800")


async def test_functions_see_the_current_values_of_globals(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install) -> None:
    script(["base = 1\ndef f(v):\n    return v + base\nadd = lambda v: v * base\nprint(f(1))",
            "base = 100\nprint(f(1), add(2))",
            "def f(v):\n    return -v\nprint(f(1))",
            "exit(f(5))"])
    job = api.submit_new_job(agent, {})
    await run_to_end(job)
    assert job.console == ["2\n", "101 200\n", "-1\n"]
    assert job.exit_status == -5


async def test_rebinding_a_defined_name_to_data_sticks(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install, db_root: Path,
        statek_store: str) -> None:
    script(["def f():\n    return 1\nimport math", "f = 5\nmath = 'not a module'",
            "print(f, math)", "exit([f, math])"])
    job = api.submit_new_job(agent, {})
    uuid = job.uuid
    for _ in range(4):
        await step(job)
    assert job.console == ["5 not a module\n"]
    del job
    restart(db_root, statek_store)
    job = statek.StatekClientAPI().get_job(uuid)
    assert await step(job) is True
    assert list(job.exit_status) == [5, "not a module"]


async def test_definitions_and_imports_survive_a_restart(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install, db_root: Path,
        statek_store: str) -> None:
    script([
        "import math\n"
        "def deco(fn):\n    return fn\n"
        "class Shape:\n    def __init__(self, r):\n        self.r = r\n"
        "@deco\ndef area(r):\n    return math.pi * r * r\n"
        "class Circle(Shape):\n    def size(self):\n        return area(self.r)\n"
        "k = 2\ncount = [0]",
        "print(round(area(k), 3), math.floor(Circle(1).size()))\ncount.append(1)",
        "exit([math.sqrt(16), len(count)])",
    ])
    job = api.submit_new_job(agent, {})
    uuid = job.uuid
    await step(job)  # request
    await step(job)  # definitions, request
    assert job.status == JobStatus.STARTED and job.console == []
    del job
    restart(db_root, statek_store)
    job = statek.StatekClientAPI().get_job(uuid)
    assert job.locals["k"] == 2
    assert await step(job) is False
    assert job.console == ["12.566 3\n"], job.console
    del job
    restart(db_root, statek_store)
    job = statek.StatekClientAPI().get_job(uuid)
    assert await step(job) is True
    assert list(job.exit_status) == [4.0, 2]
    assert job.error is None


async def test_a_reopened_job_never_reruns_its_last_reply(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install, db_root: Path,
        statek_store: str) -> None:
    """The pending code is the last reply's, read back from the log: once it has run (or the
    job was re-opened by a message) it is not pending any more, in this process or another."""
    provider = script(["print('once')\nexit('a')", "exit('b')"], record=True)
    job = api.submit_new_job(agent, {})
    assert await run_to_end(job) == 2 and job.exit_status == "a"
    assert job.pending_code is None
    job.push_user_message("again")
    uuid = job.uuid
    del job
    restart(db_root, statek_store)
    job = statek.StatekClientAPI().get_job(uuid)
    assert await run_to_end(job) == 2 and job.exit_status == "b"
    assert job.console == ["once\n"]
    assert job.turns == 2 and provider.calls == 2


@pytest.mark.in_process_only(reason="checks the in-process namespace cache")
async def test_a_kept_namespace_never_shows_what_storage_does_not_have(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install) -> None:
    """A job whose locals are all scalars keeps its namespace between steps; it must behave
    exactly as one rebuilt from storage: a failed statement's bindings are gone, and locals
    written from outside the step are seen."""
    script(["n = n + 1",
            "for i in range(3):\n    half = i\n    1 / 0",
            "try:\n    print(n, half)\nexcept NameError:\n    print(n, 'no half')",
            "print(n, extra)\nexit(n)"])
    job = api.submit_new_job(agent, {"n": 0})
    await step(job)  # asks
    await step(job)  # n = n + 1, asks
    assert KEPT in worker_state.current().holding(job.uuid)  # kept: the statement completed
    await step(job)  # the loop binds `half`, then fails: not kept
    assert "ZeroDivisionError" in job.console[-1]
    assert KEPT not in worker_state.current().holding(job.uuid)
    await step(job)
    assert job.console[-1] == "1 no half\n"
    assert KEPT in worker_state.current().holding(job.uuid)
    job.bind_locals({"extra": "from outside"})
    assert KEPT not in worker_state.current().holding(job.uuid)
    assert await run_to_end(job) == 1
    assert job.console[-1] == "1 from outside\n" and job.exit_status == 1


async def test_job_params_are_read_only(api: statek.StatekClientAPI,
                                        agent: statek.Agent) -> None:
    warmup = ("print(params['max_turns'], list(params['tags']))\n"
              "try:\n    params.update({'max_turns': 0})\nexcept AttributeError:\n"
              "    print('no update')\n"
              "try:\n    params['max_turns'] = 0\nexcept Exception as e:\n    print('no write')\n"
              "try:\n    params['tags'].append('x')\nexcept AttributeError:\n"
              "    print('no append')\n"
              "exit('ok')")
    jobs = [api.submit_new_job(agent, {}, warmup_code=warmup, max_turns=5, tags=["a"])
            for _ in range(2)]
    for job in jobs:
        assert await run_job_step(job) is True
        assert job.exit_status == "ok", job.console
        assert job.console[0] == "5 ['a']\n"
        assert "no update\n" in job.console and "no append\n" in job.console
    params = jobs[0].jobdef.params
    assert params["max_turns"] == 5 and list(params["tags"]) == ["a"]
    assert "max_turns" not in jobs[0].locals


async def test_unstorable_exit_status_keeps_its_repr(api: statek.StatekClientAPI,
                                                     agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {}, warmup_code="class K:\n    pass\nexit([K(), exit])")
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE and job.error is None
    # the same preview in either mode (an executor's showed its own addresses and classes)
    assert job.exit_status == "[<K object>, <method object>]"
    assert "cannot be stored" in "".join(job.console)


@pytest.mark.parametrize(("status", "why"), [
    ("10 ** 5000", "does not fit in 64 bits"),
    ("[1, 2 ** 70]", "does not fit in 64 bits"),
    # Decimals are plain data too: one out of the store's range was shown as
    # '<Decimal object>' and the job ended without an error (the value lost silently)
    ("decimal.Decimal('1E+2')", "Decimal"),
    ("{'total': decimal.Decimal('1.23456789012345678901234567890')}", "Decimal"),
])
async def test_plain_data_the_store_cannot_take_is_an_error_in_either_mode(
        api: statek.StatekClientAPI, agent: statek.Agent, status: str, why: str) -> None:
    """README: plain data that cannot be stored is kept as a repr cut to 1,000 characters
    and the job gets an error saying why. An isolated executor used to send only a repr, so
    the job ended without the error (a failure that looked like a success)."""
    job = api.submit_new_job(agent, {}, warmup_code=f"import decimal\nexit({status})")
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE
    assert job.error is not None and "could not be stored" in job.error and why in job.error
    assert isinstance(job.exit_status, str) and len(job.exit_status) <= 1_100


async def test_an_unstorable_exit_status_is_described_without_running_job_code(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """The preview of an exit status never calls the job's own __repr__, in either mode: in
    process it would run outside the step's budget (a loop there would stall the worker);
    an isolated executor ran it, so a loop ended a job that had exited, and a huge or
    long repr was stored whole."""
    code = ("class K:\n    def __repr__(self):\n        while True:\n            pass\n"
            "class Long:\n    def __repr__(self):\n        return 'JOB CODE RAN ' + 'x' * 5000\n"
            "exit({'k': K(), 'n': [1, 'two'], 'long': Long()})")
    job = api.submit_new_job(agent, {}, warmup_code=code, step_code_budget=1)
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE and job.error is None, job.error
    assert job.exit_status == "{'k': <K object>, 'n': [1, 'two'], 'long': <Long object>}"


async def test_bad_job_param_does_not_break_the_step(api: statek.StatekClientAPI,
                                                     agent: statek.Agent) -> None:
    from statek.models.jobdef import get_or_create_jobdef
    from statek.models.submit import create_job

    with pytest.raises(ValueError, match=r"job_params\['max_turns'\] must be an int"):
        api.submit_new_job(agent, {}, max_turns="lots")  # refused at submit now
    # one stored before submit checked params (or written around it) still ends cleanly
    job = create_job(get_or_create_jobdef(agent, None, None, {"max_turns": "lots"}), {}, None)
    assert await run_job_step(job) is True
    assert job.status == JobStatus.DONE
    assert "internal error" in (job.error or "") and "lots" in (job.error or "")


# --- consoles, compile cache -----------------------------------------------------------------


async def test_print_goes_to_its_own_jobs_console(api: statek.StatekClientAPI,
                                                  agent: statek.Agent, script: Install) -> None:
    script(lambda request: "print('from', name)", latency=0.005)
    a = api.submit_new_job(agent, {"name": "A"})
    b = api.submit_new_job(agent, {"name": "B"})
    for _ in range(4):  # both jobs in flight at once, awaiting the model in turn
        await asyncio.gather(step(a), step(b))
    assert a.console == ["from A\n"] * 3
    assert b.console == ["from B\n"] * 3


async def test_shared_warmup_compiles_once(api: statek.StatekClientAPI, agent: statek.Agent,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.sandbox import compiler

    calls: list[str] = []
    real = compiler._compile

    def counting(source: str, policy: Any) -> Any:
        calls.append(source)
        return real(source, policy)

    monkeypatch.setattr(compiler, "_compile", counting)
    sandbox.clear_compile_cache()
    warmup = "total = i * 3\n# %%\nexit(total)"
    jobs = api.submit_new_jobs_batch(agent, [{"i": i} for i in range(30)], warmup_code=warmup)
    for job in jobs:
        assert await run_job_step(job) is True
    assert [job.exit_status for job in jobs] == [i * 3 for i in range(30)]
    assert calls == ["total = i * 3", "exit(total)"]
    assert sandbox.compile_cache_size() == 2


# --- restricted mode ---------------------------------------------------------------------------

ESCAPES = {
    "import_os": "import os\nos.system('touch /tmp/statek-escaped')",
    "subclasses": "x = ().__class__.__bases__[0].__subclasses__()",
    "getattr_by_name": "g = [getattr][0]\ng((), '__cl' + 'ass__')",
    "open_file": "f = [open][0]\nf('/etc/passwd').read()",
    "module_through_attribute": "import json\nc = json.codecs\nprint(c)",
    "eval": "eval('1 + 1')",
    "frame_walk": "g = (i for i in [1])\nfr = g.gi_frame",
    "format_string": "'{0.__class__}'.format(1)",
    "type_builtin": "t = [type][0]\nt(1)",
    "time_sleep": "import time\ntime.sleep(0)",
}


def escaped() -> bool:
    return os.path.exists("/tmp/statek-escaped")


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
async def test_escape_in_warmup_ends_the_job_with_the_error(
        api: statek.StatekClientAPI, agent: statek.Agent, source: str) -> None:
    job = api.submit_new_job(agent, {}, warmup_code=source + "\nexit('escaped')")
    assert await run_job_step(job) is True  # returns normally, never raises
    assert job.status == JobStatus.DONE
    assert job.exit_status is None
    assert job.error is not None and job.error.startswith("warmup failed")
    text = "".join(job.console)
    assert "SandboxViolation" in text or "refused" in text, text
    assert not escaped()


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
async def test_escape_in_reply_code_is_recorded_and_the_job_goes_on(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install,
        source: str) -> None:
    provider = script([source, "exit('next turn')"], record=True)
    job = api.submit_new_job(agent, {})
    assert await step(job) is False
    assert await step(job) is False
    text = "".join(job.console)
    assert "SandboxViolation" in text or "refused" in text, text
    assert job.exceptions == 1
    # the model is shown the refusal
    assert "SandboxViolation" in provider.requests[-1].messages[-1].content
    assert await step(job) is True and job.exit_status == "next turn"


async def test_violation_swallowed_by_job_code_is_still_recorded(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    source = "try:\n    t = [type][0]\n    t(1)\nexcept Exception:\n    pass\nexit('went on')"
    job = api.submit_new_job(agent, {}, warmup_code=source)
    assert await run_job_step(job) is True
    assert job.exit_status == "went on"
    assert any("refused" in line and "type()" in line for line in job.console), job.console


@pytest.mark.in_process_only(reason="os.getpid() in job code is the executor's pid")
async def test_unrestricted_mode_allows_os(api: statek.StatekClientAPI,
                                           agent: statek.Agent) -> None:
    try:
        statek.init(restricted=False)
        job = api.submit_new_job(agent, {}, warmup_code="import os\nexit(os.getpid())")
        assert await run_job_step(job) is True
        assert job.exit_status == os.getpid() and job.error is None
    finally:
        statek.init()
    again = api.submit_new_job(agent, {"v": 1}, warmup_code="import os\nexit(os.getpid())")
    assert await run_job_step(again) is True
    assert again.exit_status is None and "import of 'os'" in (again.error or "")


# --- errors in job code --------------------------------------------------------------------------


async def test_exception_in_job_code_is_recorded_and_statements_after_it_skip(
        api: statek.StatekClientAPI, agent: statek.Agent, script: Install) -> None:
    provider = script(["a = 1\nb = a / 0\nc = 3", "z = 2", "exit([a, 'b' in dir_ok])"],
                      record=True)
    job = api.submit_new_job(agent, {"dir_ok": []})
    await step(job)
    assert await step(job) is False
    text = "".join(job.console)
    assert "ZeroDivisionError" in text and "line 2" in text
    assert "b = a / 0" in text
    assert job.exceptions == 1 and job.consecutive_exceptions == 1
    assert set(job.locals) == {"dir_ok", "a"}
    assert "ZeroDivisionError" in provider.requests[-1].messages[-1].content
    assert await step(job) is False
    assert job.consecutive_exceptions == 0 and job.exceptions == 1
    assert await step(job) is True
    assert list(job.exit_status) == [1, False]


async def test_syntax_error_in_reply_is_recorded(api: statek.StatekClientAPI,
                                                 agent: statek.Agent, script: Install) -> None:
    script(["```python\ndef broken(:\n    pass\n```", "exit(2)"])
    job = api.submit_new_job(agent, {})
    await step(job)
    assert await step(job) is False
    assert "syntax error" in "".join(job.console)
    assert job.exceptions == 1
    assert await step(job) is True and job.exit_status == 2


async def test_except_exception_does_not_catch_exit(api: statek.StatekClientAPI,
                                                     agent: statek.Agent) -> None:
    source = ("try:\n    exit('inner')\nexcept Exception:\n    print('caught')\n"
              "exit('outer')")
    job = api.submit_new_job(agent, {}, warmup_code=source)
    assert await run_job_step(job) is True
    assert job.exit_status == "inner"
    assert job.console == []


async def test_a_print_over_the_console_limit_fails_in_the_jobs_own_statement(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """README: one print over 1,000,000 characters fails with a ValueError, which job code
    can catch. An isolated executor sent the whole print, and the scheduler's refusal ended
    the job with an internal error and statek's traceback in the console."""
    code = ("try:\n    print('y' * 2_000_000)\nexcept ValueError as exc:\n"
            "    print('caught:', str(exc)[:40])\n'z' * 1_000_001\nexit('handled')")
    job = api.submit_new_job(agent, {}, warmup_code=code)
    assert await run_job_step(job) is True
    assert job.error is not None and "warmup failed" in job.error  # the echo's ValueError
    assert "over the limit of 1,000,000" in job.error
    assert job.console[0] == "caught: console output of 2,000,001 characters i\n"
    assert "internal error" not in "".join(job.console)


async def test_get_all_and_get_any_of_nothing_say_what_they_need(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """They failed later with "'NoneType' object is not iterable"."""
    code = ("out = []\nfor call in (lambda: get_all(), lambda: get_any([]), "
            "lambda: get_all(1)):\n    try:\n        call()\n    except TypeError as exc:\n"
            "        out.append(str(exc))\nexit(out)")
    job = api.submit_new_job(agent, {}, warmup_code=code)
    assert await run_job_step(job) is True and job.error is None, job.error
    assert list(job.exit_status) == [
        "get_all() needs at least one future (futures, or one list of them)",
        "get_any() needs at least one future (futures, or one list of them)",
        "get_all() expected futures, got int"]


async def test_a_future_shows_what_its_value_would_be_without_resolving_it(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """A finished child's future showed "pending" (`statek show`) until job code read it."""
    from statek.models.future import ALL, ANY, JOB, MESSAGE, TIMER, Future

    child = api.submit_new_job(agent, {}, warmup_code="exit(2)")
    parent = api.submit_new_job(agent, {})
    waiting = Future(JOB, parent, target=child)
    assert repr(waiting) == "<Future job pending>"
    assert await run_job_step(child) is True
    assert repr(waiting) == "<Future job = 2>" and waiting.resolved is False
    passed = Future(TIMER, parent, deadline=1.5)
    assert repr(Future(ALL, parent, parts=[waiting, passed])) == "<Future all = [2, 1.5]>"
    later = Future(TIMER, parent, deadline=4e9)
    assert repr(Future(ALL, parent, parts=[waiting, later])) == "<Future all pending>"
    assert repr(Future(ANY, parent, parts=[later, waiting])) == "<Future any = 2>"
    assert waiting.resolved is False and passed.resolved is False
    api.push_message(parent, "hello")
    message = Future(MESSAGE, parent)
    assert repr(message) == "<Future message pending>"  # reading it would take the message
    assert message.resolved is False


async def test_a_statement_that_waits_prints_each_line_once(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """A statement that stops to wait runs again from its start when the job resumes; what
    it printed before stopping showed again on every run (0, 0, 1, 0, 1, 2)."""
    from statek.executors.utils import run_jobs_loop

    code = ("total = 0\nfor i in range(3):\n    print('adding', i)\n"
            "    total += sleep(0.01).value and 1\nprint('done', total)\nexit(total)")
    job = api.submit_new_job(agent, {}, warmup_code=code)
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == 3 and job.error is None, job.error
    assert job.console == ["adding 0\n", "adding 1\n", "adding 2\n", "done 3\n"]


async def test_a_statement_that_waits_drops_its_refusal_notes_with_its_prints(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """A refusal job code swallowed writes a console line too: dropping the last N lines
    counted as prints removed the note and kept a print (in process), while an executor
    dropped both. Each run of the statement writes both again: each shows once."""
    from statek.executors.utils import run_jobs_loop

    code = ("for i in range(2):\n    print('step', i)\n    try:\n        t = [type][0]\n"
            "        t(1)\n    except Exception:\n        pass\n    sleep(0.01).value\n"
            "exit('ok')")
    job = api.submit_new_job(agent, {}, warmup_code=code)
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == "ok" and job.error is None, job.error
    console = list(job.console)
    assert [line for line in console if line.startswith("step")] == ["step 0\n", "step 1\n"]
    assert len(console) == 4 and all("refused" in console[i] for i in (1, 3)), console

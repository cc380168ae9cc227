from __future__ import annotations

import dbzero as db0
import pytest

import statek
from statek.errors import UnstorableValueError
from statek.models.code_analysis import external_names, split_blocks
from statek.models.jobdef import MAX_ERROR_RECORDS


def test_identical_definitions_are_reused(api: statek.StatekClientAPI,
                                          agent: statek.Agent) -> None:
    a = api.submit_new_job(agent, {"x": 1}, model="scripted/m", temperature=0.5)
    b = api.submit_new_job(agent, {"x": 2}, temperature=0.5, model="scripted/m")
    c = api.submit_new_job(agent, {"x": 3}, model="scripted/m", temperature=0.7)
    assert a.jobdef == b.jobdef
    assert a.jobdef != c.jobdef
    assert len(db0.find(statek.JobDef)) == 2
    assert a.jobdef.metadata["MODEL"] == "scripted/m"
    assert a.jobdef.params == {"temperature": 0.5}


def test_batch_shares_one_definition(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    jobs = api.submit_new_jobs_batch(agent, [{"i": i} for i in range(20)], warmup_code="x = i")
    assert len({db0.uuid(j.jobdef) for j in jobs}) == 1
    assert tuple(jobs[0].jobdef.warmup_blocks) == ("x = i",)


def test_unstorable_param_is_rejected(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    with pytest.raises(UnstorableValueError, match=r"job_params.*'cb'"):
        api.submit_new_job(agent, cb=lambda: 1)
    assert len(db0.find(statek.Job)) == 0


def test_error_records_are_bounded(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    jobdef = api.submit_new_job(agent).jobdef
    for i in range(MAX_ERROR_RECORDS + 5):
        jobdef.record_error("warmup", f"boom {i}")
    assert len(jobdef.errors) == MAX_ERROR_RECORDS
    assert jobdef.errors[-1]["message"] == f"boom {MAX_ERROR_RECORDS + 4}"


@pytest.mark.parametrize(("code", "blocks"), [
    ("a = 1\n# %%\nb = 2", ("a = 1", "b = 2")),
    ("a = 1\n#%% second\nb = 2\n# %%\n", ("a = 1", "b = 2")),
    (["x = 1", "", "y = 2"], ("x = 1", "y = 2")),
    (None, ()),
])
def test_split_blocks(code: object, blocks: tuple[str, ...]) -> None:
    assert split_blocks(code) == blocks  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "provided", "expected"), [
    ("result = task * 2", (), ("task",)),
    ("x = 1\ny = x + task", (), ("task",)),
    ("x = x + 1", (), ("x",)),
    ("x += 1", (), ("x",)),
    ("for i in items:\n    total = i", (), ("items",)),
    ("out = [t for t in tasks]", (), ("tasks",)),
    ("def f(a):\n    return a + hidden\nf(1)", (), ()),
    ("r = delegate(helper, q=question)", ("delegate",), ("helper", "question")),
    ("import math\nv = math.sqrt(n)", (), ("n",)),
    ("print(len(data))", (), ("data",)),
])
def test_external_names(code: str, provided: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert external_names([code], provided) == expected


def test_supervised_agent_knows_its_external_locals(statek_store: str) -> None:
    agent = statek.SupervisedAgent("triage")
    agent.update_warmup_def("summary = summarize(ticket)\n# %%\nexit(summary)")
    assert agent.external_locals == ("summarize", "ticket")
    assert agent.warmup_code == "summary = summarize(ticket)\n# %%\nexit(summary)"

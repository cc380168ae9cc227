"""Persistence across a real restart: two separate processes over one directory."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.e2e.helpers import run_python

WRITER = textwrap.dedent("""
    import sys, dbzero as db0, statek
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    a = statek.Agent("writer", "prompt", metadata={"MODEL": "scripted/x"})
    s = statek.SupervisedAgent("sup"); s.update_warmup_def("r = task\\nexit(r)")
    api = statek.StatekClientAPI()
    ids = api.submit_new_job_ids(a, [{"i": i} for i in range(1000)])
    for i in range(10):
        api.push_message(ids[i], f"msg {i}")
    api.push_event(s, {"task": 1})
    first = api.get_job(ids[0]); first.set_status(statek.JobStatus.STARTED)
    first.write_console("hello\\n")
    statek.close()
    print(ids[0], ids[-1])
""")

READER = textwrap.dedent("""
    import sys, json, dbzero as db0, statek
    from statek.models.status import JobStatus
    db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
    api = statek.StatekClientAPI()
    first, last = api.get_job(sys.argv[2]), api.get_job(sys.argv[3])
    q = statek.StatekPushQueue()
    sup = [a for a in db0.find(statek.SupervisedAgent)][0]
    print(json.dumps({
        "agents": sorted(a.role for a in db0.find(statek.Agent)),
        "jobs": len(db0.find(statek.Job)),
        "ready": len(db0.find(statek.Job, JobStatus.READY)),
        "started": len(db0.find(statek.Job, JobStatus.STARTED)),
        "first": [first.locals["i"], first.console, str(first.status)],
        "last": last.locals["i"],
        "messages": [m for _, m in q.peek_messages(100)[1]],
        "events": [db0.load(e) for e in q.peek_events(sup, 10)[1]],
        "externals": list(sup.external_locals),
        "model": first.jobdef.metadata["MODEL"],
    }))
    statek.close()
""")




def test_state_survives_a_process_restart(tmp_path: Path) -> None:
    first, last = run_python(WRITER, str(tmp_path)).split()
    state = json.loads(run_python(READER, str(tmp_path), first, last))
    assert state["agents"] == ["sup", "writer"]
    assert state["jobs"] == 1000
    assert (state["ready"], state["started"]) == (999, 1)
    assert state["first"] == [0, ["hello\n"], "STARTED"]
    assert state["last"] == 999
    assert state["messages"] == [f"msg {i}" for i in range(10)]
    assert state["events"] == [{"task": 1}]
    assert state["externals"] == ["task"]
    assert state["model"] == "scripted/x"

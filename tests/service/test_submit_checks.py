"""Job params statek reads are checked when a job is submitted, on every path (in-process,
outbox, HTTP), and a feeding process gets a clear error for what only the worker can do."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

import statek
from statek.models.root import root_jobs
from statek.remote import RemoteInvalidParamError
from tests.service.conftest import Worker

BAD_PARAMS: list[tuple[dict[str, Any], str]] = [
    ({"budget": {"tokens": -3}}, "job_params['budget']: budget tokens must be >= 0"),
    ({"budget": {"steps": 1.5}}, "job_params['budget']: budget steps must be an int"),
    ({"budget": {"coins": 1}}, "job_params['budget']: unknown budget key 'coins'"),
    ({"budget": {"policy": "pray"}}, "job_params['budget']: budget policy must be"),
    ({"budget": 5}, "job_params['budget'] must be a mapping"),
    ({"max_turns": "ten"}, "job_params['max_turns'] must be an int"),
    ({"max_tokens": True}, "job_params['max_tokens'] must be an int"),
    ({"step_timeout": -1}, "job_params['step_timeout'] must be >= 0"),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMS)
def test_in_process_submit_refuses_bad_params_and_stores_nothing(
        api: statek.StatekClientAPI, agent: statek.Agent, params: dict[str, Any],
        message: str) -> None:
    api.submit_new_job(agent, {"ok": 1})
    before = len(root_jobs(api.prefix))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        api.submit_new_job(agent, {"x": 1}, **params)
    with pytest.raises(ValueError, match="job_params"):
        api.submit_new_job_ids(agent, [{"x": 1}, {"x": 2}], **params)
    assert len(root_jobs(api.prefix)) == before


def test_in_process_submit_takes_good_params(api: statek.StatekClientAPI,
                                             agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, budget={"tokens": 10, "policy": "fail"}, max_turns=3,
                             step_timeout=2.5)
    assert job.jobdef.params["budget"]["tokens"] == 10


def test_http_submit_refuses_bad_params_naming_the_field(worker: Worker) -> None:
    with httpx.Client(base_url=worker.url, timeout=60) as http:
        before = http.get("/v1/counts").json()["total"]
        for params, message in BAD_PARAMS:
            for path, body in (("/v1/jobs", {"agent": "helper", "params": params}),
                               ("/v1/jobs/batch", {"agent": "helper", "params": params,
                                                   "vars_batch": [{}, {}]})):
                answer = http.post(path, json=body)
                assert answer.status_code == 422, answer.text
                error = answer.json()["error"]
                assert error["code"] == "invalid_param" and error["field"] == "params"
                assert message in error["message"]
        assert http.get("/v1/counts").json()["total"] == before
    with statek.connect(worker.url) as client, pytest.raises(RemoteInvalidParamError,
                                                               match="budget tokens"):
        client.submit_new_job("helper", budget={"tokens": -3})


FEEDER = """
import json, statek
statek.open_default_store(when_held="feed")
api = statek.StatekClientAPI()
job = api.submit_new_job("helper", {"a": 1}, warmup_code="exit(wait_message().value)")
out = {}
calls = {"set_budget": lambda: api.set_budget(job.uuid, tokens=5),
         "raise_budget": lambda: api.raise_budget(job.uuid, tokens=5),
         "agent": lambda: statek.Agent("newcomer"),
         "budget_param": lambda: api.submit_new_job("helper", budget={"tokens": -3})}
for name, call in calls.items():
    try:
        call()
        out[name] = "accepted"
    except Exception as exc:
        out[name] = [type(exc).__name__, str(exc), getattr(exc, "pid", None)]
print(json.dumps(out))
"""


def test_feeding_process_gets_clear_errors(worker: Worker) -> None:
    done = subprocess.run([sys.executable, "-c", FEEDER], env=worker.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("set_budget", "raise_budget"):
        kind, message, pid = out[name]
        assert kind == "StoreLockedError" and pid == worker.proc.pid
        assert f"the worker (pid {worker.proc.pid}) holds the store" in message
        assert f"statek.connect({worker.url!r})" in message
    kind, message, _ = out["agent"]
    assert kind == "StoreLockedError" and "creating Agent" in message
    assert "do it in the worker's process, or while no worker runs" in message
    kind, message, _ = out["budget_param"]
    assert kind == "ValueError" and "job_params['budget']: budget tokens" in message



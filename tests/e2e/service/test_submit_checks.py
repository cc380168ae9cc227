"""Job params statek reads are checked when a job is submitted, on every path (in-process,
outbox, HTTP), and a feeding process gets a clear error for what only the worker can do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import statek
from statek.models.root import root_jobs
from statek.remote import RemoteInvalidParamError
from tests.e2e.service.conftest import Worker, clean_env

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




def test_http_keeps_big_integers_exact_or_refuses_them(worker: Worker) -> None:
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=worker.url, timeout=60) as http:
        for literal in ("123456789012345678901234567890", "12345678901234567890"):
            body = '{"agent": "helper", "vars": {"n": LITERAL}}'.replace("LITERAL", literal)
            answer = http.post("/v1/jobs", headers=headers, content=body)
            assert answer.status_code == 422, answer.text  # was stored as a float
            assert answer.json()["error"]["field"] == "vars['n']"
            assert "does not fit in 64 bits" in answer.json()["error"]["message"]
        answer = http.post("/v1/jobs", headers=headers, content=(
            '{"agent": "helper", "vars": {"n": 9223372036854775807, "s": "12345678901234567890"}}'))
        assert answer.status_code == 201, answer.text
        stored = http.get(f"/v1/jobs/{answer.json()['job']}").json()["locals"]
        assert stored == {"n": 2**63 - 1, "s": "12345678901234567890"}
        answer = http.post("/v1/jobs", headers=headers, content=(
            '{"agent": "helper", "vars": {"n": 12345678901234567890123, "x": NaN}}'))
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(("args", "env", "code", "line"), [
    (["worker", "--concurrency", "0", "--offline"], {}, 2,
     "Invalid value for '--concurrency': 0 is not in the range x>=1"),
    (["jobs", "--limit", "-1"], {}, 2, "Invalid value for '--limit': -1 is not in the range"),
    (["jobs"], {"STATEK_COMMIT_INTERVAL": "-1"}, 1,
     "Error: invalid statek settings: commit_interval: Input should be greater than 0"),
    (["worker", "--offline", "--until-idle"], {"STATEK_MAX_TURNS": "many"}, 1,
     "Error: invalid statek settings: max_turns"),
    (["demo", "--concurrency", "0"], {}, 2,
     "Invalid value for '--concurrency': 0 is not in the range x>=1"),
    (["jobs"], {"STATEK_COMMIT_INTERVAL": "0.5", "STATEK_COMMIT_INTERVAL_MAX": "0.1"}, 1,
     "commit_interval_max (0.1) is below commit_interval (0.5)"),
    (["jobs"], {"STATEK_RATE_LIMITS": "{bad"}, 1, "STATEK_RATE_LIMITS must be valid JSON"),
    (["worker", "--offline", "--until-idle"], {"STATEK_DATA_DIR": "/dev/null"}, 1,
     "Error: cannot open the store at /dev/null (STATEK_DATA_DIR)"),
    (["agent", "add", "helper"], {"STATEK_DATA_DIR": "/proc/no-such-dir"}, 1,
     "Error: cannot open the store at /proc/no-such-dir (STATEK_DATA_DIR)"),
    (["submit", "helper"], {"STATEK_DATA_DIR": "/proc/no-such-dir"}, 1,
     "Error: no store at /proc/no-such-dir/statek (STATEK_DATA_DIR): no agent 'helper'"),
    (["worker", "--until-idle", "--provider", "nosuch"], {}, 2,
     "Invalid value for --provider: no provider named 'nosuch' (known: anthropic,"),
    (["worker", "--until-idle"], {"STATEK_DEFAULT_PROVIDER": "opneai"}, 1,
     "Error: STATEK_DEFAULT_PROVIDER='opneai' names no provider (known: anthropic,"),
])
def test_cli_user_errors_are_one_line(tmp_path: Path, args: list[str], env: dict[str, str],
                                      code: int, line: str) -> None:
    done = subprocess.run([sys.executable, "-m", "statek", *args],
                          env=clean_env(tmp_path / "data", **env), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert line in done.stderr and "Traceback" not in done.stderr


def test_demo_refusing_its_options_stores_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "statek", "demo", "--concurrency", "0"],
                          env=clean_env(data), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert not data.exists()  # refused before a job was stored


def test_an_import_that_fails_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "badmod.py").write_text('raise RuntimeError("boom")\n')
    done = subprocess.run([sys.executable, "-m", "statek", "worker", "--offline",
                           "--until-idle", "--import", "badmod"], cwd=tmp_path,
                          env=clean_env(tmp_path / "data"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["Error: importing 'badmod' (--import) failed: RuntimeError: boom "
                     "(run `python -c 'import badmod'` for the traceback)"], done.stderr

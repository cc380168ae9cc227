"""`statek worker --until-idle` as its own process over a store the test filled and closed
(dbzero allows one writer per prefix), pointed at the servers by STATEK_* variables only."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dbzero as db0

import statek
from statek import store
from tests.e2e import tools
from tests.e2e.conftest import Servers
from tests.e2e.scenarios import (
    Recovery,
    ToolFlow,
    anthropic,
    assert_no_unmatched,
    fetch_job,
    load,
    openai,
)

REPO = Path(__file__).resolve().parents[2]
PREFIX = "statek"  # the default prefix `statek worker` opens
WORKER_TIMEOUT = 180.0  # failure bound only


@contextmanager
def opened_store(root: Path) -> Iterator[statek.StatekClientAPI]:
    """The store as this process's only writer, committed and closed on leaving."""
    root.mkdir(parents=True, exist_ok=True)
    db0.init(dbzero_root=str(root))
    statek.init()
    statek.open_prefix(PREFIX, "rw")
    try:
        yield statek.StatekClientAPI()
    finally:
        store.close()


def test_statek_worker_process_runs_real_provider_jobs(servers: Servers, loop_kind: str,
                                                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    gpt = ToolFlow("SCN-CLI-GPT", openai("e2e-cli-gpt"))
    claude = ToolFlow("SCN-CLI-CLAUDE", anthropic("e2e-cli-claude"))
    sloth = Recovery("SCN-CLI-SLOTH", openai("e2e-cli-gpt"), "r = e2e_slow(30)",
                     needle="TimeoutError", exit_value="gave up waiting")
    before_openai = load(servers.openai, gpt.rules(), sloth.rules())
    before_anthropic = load(servers.anthropic, claude.rules())
    with opened_store(data) as api:
        words = {flow.marker: [f"{flow.marker.lower()}-{i}" for i in range(3)]
                 for flow in (gpt, claude)}
        uuids = {flow.marker: [api.submit_new_job(agent, {"word": w}).uuid
                               for w in words[flow.marker]]
                 for flow, agent in ((gpt, gpt.agent()), (claude, claude.agent()))}
        slow_uuid = api.submit_new_job(sloth.agent([tools.e2e_slow]), {"n": 1},
                                       step_timeout=2.0).uuid
    env = servers.environment(loop_kind == "uvloop", data)
    env["PYTHONPATH"] = str(REPO)
    statek_cli = str(Path(sys.executable).with_name("statek"))

    done = subprocess.run(
        [statek_cli, "worker", "--until-idle", "--provider", "openai", "--concurrency", "4",
         "--import", "tests.e2e.tools"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WORKER_TIMEOUT,
        stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stdout + done.stderr
    jobs = 2 * 3 + 1
    found = re.search(r"worker stopped: (\d+) steps, (\d+) jobs done", done.stdout)
    assert found, done.stdout + done.stderr
    assert int(found.group(2)) == jobs and int(found.group(1)) >= 2 * jobs
    assert "Traceback" not in done.stderr, done.stderr
    assert "worker ready" in done.stderr, done.stderr
    with opened_store(data):
        for flow in (gpt, claude):
            for uuid, word in zip(uuids[flow.marker], words[flow.marker], strict=True):
                flow.check(fetch_job(uuid), word, loop_kind)
        sloth.check(fetch_job(slow_uuid))
    assert_no_unmatched(servers.openai, before_openai)
    assert_no_unmatched(servers.anthropic, before_anthropic)
    gpt.check_server(servers.openai, 3, before_openai)
    claude.check_server(servers.anthropic, 3, before_anthropic)

"""A poison job cannot take the fleet down for good: worker processes die inside its step
(SIGSEGV, SIGKILL, killed by the hard-limit watchdog), each death is blamed on that job only,
and after `max_job_crashes` deaths the next start ends it instead of running it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

WORKER = textwrap.dedent('''
    import json, os, signal, sys
    import dbzero as db0
    import statek
    from statek.tools import tool

    @tool
    def die(how: str) -> None:
        """Test-only: end this process from inside a step."""
        if how == "segv":
            signal.raise_signal(signal.SIGSEGV)
        os.kill(os.getpid(), signal.SIGKILL)

    root, mode = sys.argv[1], sys.argv[2]
    db0.init(dbzero_root=root)
    statek.init(statek.get_statek_settings(
        default_provider="scripted", step_code_budget=0.3, step_kill_after=1.0,
        max_job_crashes=2, use_uvloop=False))
    statek.open_prefix("fleet", "rw")
    if mode == "setup":
        def agent(role, code, tools=()):
            made = statek.SupervisedAgent(role, tools=list(tools))
            made.update_warmup_def(code)
            return made
        api = statek.StatekClientAPI()
        good = agent("good", "exit(n * 10)")
        jobs = {
            "segv": api.submit_new_job(agent("segv", "die('segv')", ["die"]), {}).uuid,
            "kill": api.submit_new_job(agent("kill", "die('kill')", ["die"]), {}).uuid,
            # C-level work holding the GIL: no budget signal reaches it, the hard limit must
            "regex": api.submit_new_job(agent("regex", (
                "import re\\nre.match('(a+)+$', 'a' * 64 + 'b')")), {}).uuid,
            "good": [api.submit_new_job(good, {"n": i}).uuid for i in range(30)],
        }
        statek.close()
        print(json.dumps(jobs))
    elif mode == "run":
        statek.start_statek(auto_terminate=True, max_concurrency=4)
        statek.close()
    else:
        out = {}
        for name in sys.argv[3:]:
            job = db0.fetch(name)
            out[name] = [job.is_done, job.exit_status, job.error, job.crashes, job.console]
        statek.close()
        print(json.dumps(out))
''')


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_poison_jobs_are_quarantined_and_the_fleet_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    root = str(tmp_path / "db")
    setup = _run(script, root, "setup")
    assert setup.returncode == 0, setup.stderr
    jobs = json.loads(setup.stdout.strip().splitlines()[-1])
    codes = []
    for _ in range(12):  # each run ends in one crash or completes; failure bound only
        run = _run(script, root, "run")
        codes.append(run.returncode)
        if run.returncode == 0:
            break
    # three poison jobs, two crashes each, then a run that completes everything else
    assert codes.count(-signal.SIGSEGV) == 2, codes
    assert codes.count(-signal.SIGKILL) == 4, codes
    assert codes[-1] == 0 and len(codes) == 7, codes
    poison = [jobs["segv"], jobs["kill"], jobs["regex"]]
    check = _run(script, root, "check", *poison, *jobs["good"])
    assert check.returncode == 0, check.stderr
    found = json.loads(check.stdout.strip().splitlines()[-1])
    for uuid in poison:
        done, _status, error, crashes, _console = found[uuid]
        assert done and crashes == 2
        assert error.startswith("quarantined:") and "max_job_crashes=2" in error
    assert "killed by the watchdog after step_kill_after=1 s" in found[jobs["regex"]][2]
    assert "the worker process died" in found[jobs["segv"]][2]
    for i, uuid in enumerate(jobs["good"]):
        done, status, error, crashes, _console = found[uuid]
        assert (done, status, error, crashes) == (True, i * 10, None, 0)

"""`settle_crash`: the count of worker deaths a job's code was running for, and its end."""

from __future__ import annotations

import pytest

import statek
from statek.runtime.quarantine import settle_crash


@pytest.mark.parametrize(("max_crashes", "ended_at"), [(2, 2), (1, 1), (0, None)])
def test_a_job_is_quarantined_at_max_job_crashes_and_never_with_0(
        api: statek.StatekClientAPI, agent: statek.Agent, max_crashes: int,
        ended_at: int | None) -> None:
    """0 turns quarantine off (the crashes are still counted): where an orchestrator kills
    workers routinely, healthy jobs were ended for it, with no way to turn it off."""
    job = api.submit_new_job(agent, {})
    ended = [settle_crash(job.uuid, False, max_crashes, 30.0) for _ in range(3)]
    assert int(job.crashes) == 3
    assert ended == [i + 1 == ended_at for i in range(3)]
    if ended_at is None:
        assert not job.is_done and job.error is None
    else:
        assert job.is_done and job.error == (
            f"quarantined: the worker process died while this job's code ran, {ended_at} "
            f"time(s) (max_job_crashes={max_crashes}); that code is not run again (a message "
            "re-opens the job at the model's next turn)")


def test_max_job_crashes_takes_0_and_refuses_a_negative() -> None:
    assert statek.StatekSettings.build(max_job_crashes=0).max_job_crashes == 0
    with pytest.raises(ValueError, match="max_job_crashes"):
        statek.StatekSettings.build(max_job_crashes=-1)


def test_with_0_the_watchdogs_own_kills_still_quarantine(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """0 is for deaths from outside; a job whose code the watchdog killed the worker for
    (step_kill_after) would otherwise crash-loop it for ever."""
    job = api.submit_new_job(agent, {})
    assert [settle_crash(job.uuid, True, 0, 30.0) for _ in range(2)] == [False, True]
    assert (job.error or "").startswith(
        "quarantined: killed by the watchdog after step_kill_after=30 s of job code while "
        "this job's code ran, 2 time(s) (max_job_crashes=2)")

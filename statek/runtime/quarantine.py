"""Poison-job quarantine: a job whose code was running when the worker died is counted, and
ended instead of run again once it has taken down `max_job_crashes` workers (0: only for the
watchdog's own kills, at the setting's default).

Only that job is blamed: the heartbeat (`statek.runtime.watchdog.Heartbeat`) names the one
job whose code the worker was executing, not the others in flight. A crash while no job code
ran (a commit, the loop's own work) blames nobody.
"""

from __future__ import annotations

import logging
from typing import Any

import dbzero as db0

from statek import store
from statek.models.status import DONE
from statek.settings import StatekSettings

log = logging.getLogger("statek.quarantine")

#: The watchdog's kills still quarantine at this count when max_job_crashes is 0: the
#: setting's default.
DEFAULT_MAX_CRASHES: int = StatekSettings.model_fields["max_job_crashes"].default


def settle_crash(job_uuid: str, killed: bool, max_crashes: int, kill_after: float) -> bool:
    """Count a crash against `job_uuid` (committed before anything runs again); True when
    the job was ended for it."""
    try:
        job: Any = db0.fetch(job_uuid)
    except Exception:  # gone, or in a prefix this worker did not open
        log.warning("the worker died while job %s ran code; that job is not found", job_uuid)
        return False
    why = (f"killed by the watchdog after step_kill_after={kill_after:g} s of job code"
           if killed else "the worker process died")
    ended = False
    with store.transition():
        crashes = job.crashes = int(job.crashes) + 1  # the log says it; the console is the job's
        # 0 turns off counting deaths against jobs, not the watchdog's own kills: it killed
        # the worker for this job's code, so that job crash-looped the worker forever
        limit = max_crashes if max_crashes > 0 else (DEFAULT_MAX_CRASHES if killed else 0)
        if 0 < limit <= crashes and job.state != DONE:
            job.finish(error=f"quarantined: {why} while this job's code ran, {crashes} "
                       f"time(s) (max_job_crashes={limit}); that code is not run "
                       "again (a message re-opens the job at the model's next turn)")
            ended = True
    db0.commit()
    log.warning("job %s: %s while its code ran (crash %d)%s", job_uuid, why, crashes,
                "; quarantined (ended)" if ended else "")
    return ended

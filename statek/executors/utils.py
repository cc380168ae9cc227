"""`statek.executors.utils`: the spec fixes this import path; it only re-exports."""

from statek.runtime.agentic import AgentLoopDef, run_agentic_fleet, run_agentic_loop
from statek.runtime.loop import run_jobs_loop
from statek.runtime.queues import process_agent_events, process_push_notifications
from statek.runtime.stepping import run_job_step, unsuspend_jobs

__all__ = [
    "AgentLoopDef", "process_agent_events", "process_push_notifications", "run_agentic_fleet",
    "run_agentic_loop", "run_job_step", "run_jobs_loop", "unsuspend_jobs",
]  # fmt: skip

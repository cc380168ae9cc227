"""The persisted model: agents, job definitions, jobs, futures and queues (dbzero @memo)."""

from statek.models.agent import Agent, SupervisedAgent
from statek.models.future import Future, SuspendJob
from statek.models.job import Job, LocalsView
from statek.models.jobdef import JobDef, get_or_create_jobdef
from statek.models.push_queue import StatekPushQueue
from statek.models.status import JobStatus

__all__ = [
    "Agent", "Future", "Job", "JobDef", "JobStatus", "LocalsView", "StatekPushQueue",
    "SupervisedAgent", "SuspendJob", "get_or_create_jobdef",
]  # fmt: skip

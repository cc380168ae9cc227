"""The one owner of what a worker process holds in memory for its open store.

Lifecycle: `store.init()` creates a `WorkerState` (`open_state`); `store.close()` drops it
(`close_state`) before dbzero closes, so no cached memo object outlives its store. Code that
runs with no state open (a storage-only script that never called `statek.init`) gets one on
first use of `current()`. In between the owner holds:

* per-job caches, keyed by job uuid (`PER_JOB`): a job's kept globals and unstorable locals,
  its transcript, the definition it runs, its executor-side reference table, its `random`
  generator. Every path that ends a job (exit, a client's cancel, a failed wake-up, a harness
  breach) goes through `Job.finish`, which fires `signals.job_finished`, which calls
  `drop_job`: no call site has to remember to forget a job. Each of these caches also bounds
  itself (least recently used first) or holds suspended jobs only, so memory follows the jobs
  in memory, not jobs seen;
* store-scoped caches (prefix roots, JobDefs by key, JobDef facts, system prompts, sandbox
  policies, resolved providers, known queue prefixes, isolation's definition parts, each
  push queue's message fifo and each fifo's tail chunk);
* the scheduler (created by `runtime.scheduler.current_scheduler`, unsubscribed here).

Modules reach it through `current()` (one global read and a None check) and read one
attribute per cache. Tests get a fresh owner with `restart()` instead of clearing globals.
dbzero is process-global (one `db0.init` per process), so one owner per process is all a
store can have: two owners over two stores in one process are not possible today.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from statek._held import JOBDEFS_HELD, HeldByObject

if TYPE_CHECKING:
    from statek.execution.conversation import Transcript
    from statek.execution.interpreter import ScalarNamespace
    from statek.execution.jobdef_facts import DefinitionInfo
    from statek.isolation.runner import RefTable
    from statek.models.fifo import Fifo, TailChunk
    from statek.providers.types import ToolSpec
    from statek.runtime.scheduler import Scheduler
    from statek.sandbox import SandboxPolicy

#: the per-job caches: `drop_job` pops the finished job from each, `resident()` counts them
PER_JOB = ("transient", "namespaces", "scalar_namespaces", "jobdef_of_job", "transcripts",
           "ref_tables", "random_generators")

#: the store-scoped caches, cleared by `release`
_STORE_CACHES = ("jobdef_facts", "jobdef_facts_held", "roots", "jobdefs", "prompts", "policies",
                 "resolved_providers", "known_prefixes", "isolation_parts", "queue_fifos",
                 "fifo_tails")
#: Queues (one per prefix) and fifos (a queue's messages, its agents' event fifos) whose
#: push-side facts are kept; past these, the others read them from dbzero on every push.
QUEUES_HELD, FIFOS_HELD = 16, 64

Callback = Callable[[str], None]
#: code (not state) to run when a job finishes, e.g. telling an executor process to forget it
_drop_callbacks: list[Callback] = []


class WorkerState:
    """Every cache and the scheduler of one worker process over one open store."""

    __slots__ = (*PER_JOB, *_STORE_CACHES, "jobdef_facts_settings", "scheduler")

    def __init__(self) -> None:
        # per job (job uuid ->)
        self.transient: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, tuple[SandboxPolicy, dict[str, Any]]] = {}
        self.scalar_namespaces: OrderedDict[str, ScalarNamespace] = OrderedDict()
        self.jobdef_of_job: OrderedDict[str, str] = OrderedDict()
        self.transcripts: OrderedDict[str, Transcript] = OrderedDict()
        self.ref_tables: OrderedDict[str, RefTable] = OrderedDict()
        self.random_generators: OrderedDict[str, random.Random] = OrderedDict()
        # per store
        self.jobdef_facts: OrderedDict[str, DefinitionInfo] = OrderedDict()
        self.jobdef_facts_settings: Any = None  # the settings `jobdef_facts` were read under
        #: JobDef object -> its facts: a new job's definition found without reading the
        #: JobDef's uuid (statek._held)
        self.jobdef_facts_held: HeldByObject[DefinitionInfo] = HeldByObject(JOBDEFS_HELD)
        self.roots: dict[str, Any] = {}
        self.jobdefs: dict[tuple[str, str], Any] = {}
        self.prompts: dict[tuple[str, str], tuple[str, tuple[ToolSpec, ...]]] = {}
        self.policies: dict[tuple[Any, ...], SandboxPolicy] = {}
        self.resolved_providers: dict[tuple[Any, ...], tuple[Any, str]] = {}
        self.known_prefixes: set[str] = set()
        self.isolation_parts: dict[str, tuple[dict[str, tuple[bool, str]], Any]] = {}
        #: push queue -> its message fifo, and fifo -> its tail chunk: a single push reads
        #: neither reference from dbzero (statek._held; docs/costs.md C34)
        self.queue_fifos: HeldByObject[Fifo] = HeldByObject(QUEUES_HELD)
        self.fifo_tails: HeldByObject[TailChunk] = HeldByObject(FIFOS_HELD)
        self.scheduler: Scheduler | None = None

    def drop_job(self, job_uuid: str) -> None:
        """Forget a finished job in every per-job cache (called by `signals.job_finished`)."""
        self.transient.pop(job_uuid, None)
        self.namespaces.pop(job_uuid, None)
        self.scalar_namespaces.pop(job_uuid, None)
        self.jobdef_of_job.pop(job_uuid, None)
        self.transcripts.pop(job_uuid, None)
        self.ref_tables.pop(job_uuid, None)
        self.random_generators.pop(job_uuid, None)
        for callback in _drop_callbacks:
            callback(job_uuid)

    def resident(self) -> dict[str, int]:
        """Entries per per-job cache: what this worker holds for jobs in memory."""
        return {name: len(getattr(self, name)) for name in PER_JOB}

    def holding(self, job_uuid: str) -> list[str]:
        """The per-job caches that hold an entry for `job_uuid`."""
        return [name for name in PER_JOB if job_uuid in getattr(self, name)]

    def release(self) -> None:
        """Drop everything (the store is closing: cached memo objects are about to be stale)."""
        if self.scheduler is not None:
            from statek import signals

            signals.unsubscribe(self.scheduler)
            self.scheduler = None
        for name in (*PER_JOB, *_STORE_CACHES):
            getattr(self, name).clear()


_state: WorkerState | None = None


def current() -> WorkerState:
    """The open owner (created on first use when no store opened one)."""
    state = _state
    if state is None:
        state = open_state()
    return state


def open_state() -> WorkerState:
    """A fresh owner (the store opened); the previous one, if any, is released first."""
    global _state
    if _state is not None:
        _state.release()
    _state = WorkerState()
    return _state


def close_state() -> None:
    """Release the owner (the store is closing); the next `current()` makes a new one."""
    global _state
    if _state is not None:
        _state.release()
    _state = None


def restart() -> WorkerState:
    """A fresh owner over the same open store: what a new worker process would start with."""
    return open_state()


def drop_job(job_uuid: str) -> None:
    """Forget a finished job (`signals.job_finished` calls this on every path ending a job)."""
    if _state is not None:
        _state.drop_job(job_uuid)
    else:
        for callback in _drop_callbacks:
            callback(job_uuid)


def on_drop(callback: Callback) -> Callback:
    """Call `callback(job_uuid)` whenever a job finishes (for memory outside this process's
    caches, e.g. an executor process's namespace)."""
    if callback not in _drop_callbacks:
        _drop_callbacks.append(callback)
    return callback


def resident() -> dict[str, int]:
    """`current().resident()` without creating an owner: all zeros when none is open."""
    return _state.resident() if _state is not None else dict.fromkeys(PER_JOB, 0)

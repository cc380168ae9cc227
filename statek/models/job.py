"""Jobs: one persisted Python session of an agent, with its status, locals, console and log.

Storage rules (docs/storage.md#s4-creating-objects-and-tags-on-fresh-objects and
docs/storage.md#s6-anchoring-and-garbage-collection) shape this class: every job is anchored in
its prefix's root list, its status is an int plus an explicit JobStatus enum tag kept in step by
`set_status` (status queries are index lookups; an explicit tag moves for about 40% less than
a `tag_fields` field), and the per-job collections (locals, console, chat log, inbox) are
created only when first written, which keeps submitting a job to a handful of writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import signals
from statek._views import FrozenMapping
from statek.errors import IllegalTransitionError
from statek.models import chatlog, job_locals, past_outcomes, value_checks
from statek.models import inbox as stored_inbox
from statek.models.budget import is_held
from statek.models.containers import container_kind
from statek.models.job_locals import StoredLocals
from statek.models.root import root_for
from statek.models.status import (
    DONE,
    LEGAL_MOVES,
    READY,
    STARTED,
    SUSPENDED,
    check_move,
    forget_status_values,
    state_of,
    status_value,
    status_values,
)
from statek.store import on_close, transition

if TYPE_CHECKING:
    from statek.models.agent import Agent
    from statek.models.jobdef import JobDef

on_close(forget_status_values)
log = logging.getLogger("statek.jobs")
#: The fields of one outcome in `Job.past_results`, in their stored order.
PAST_RESULT_KEYS = ("exit_status", "error", "finished_at", "reopened_at")

#: `job.block` once the warmup is over, whatever its length (set when a DONE job re-opens).
WARMUP_OVER = 1 << 30
#: `job.ran_turn` of a job re-opened while its log is a list: every turn so far has run, and
#: its next step writes the count (counting a list's turns reads every line of it).
ALL_TURNS_RAN = -1


class LocalsView(FrozenMapping):
    """Read-only view of a job's persisted locals (a plain copy, taken when created)."""

    __slots__ = ()

    def __init__(self, job: Job) -> None:
        super().__init__(StoredLocals(job).values())


@db0.memo(id="statek/Job")
class Job:
    """A unit of agent work. Create jobs with `StatekClientAPI.submit_new_job`."""

    # Class-level defaults: dbzero falls back to them, so a new job writes only what differs
    # (each stored attribute costs 1-2 µs at creation).
    state = READY  # the status as an int; the JobStatus tag mirrors it (see set_status)
    parent: Any = None
    locale: str | None = None
    # locals (see statek.models.job_locals): scalars as one JSON object, the rest in `vars`
    inline_vars: str | None = None
    vars: Any = None  # None, a flat (name, value, ...) tuple seed, or a dict once written
    console_lines: Any = None
    chat: Any = None
    inbox: Any = None  # the messages delivered (see statek.models.inbox for its forms)
    inbox_more: Any = None  # those after the inbox's string head
    inbox_read = 0
    block = 0  # warmup block being run; len(warmup blocks) once the warmup is over
    stmt = 0  # statement of the current code to run next (the resume point)
    ran_turn = 0  # turns whose reply code has run: the last reply's code is pending if < turns
    # (turns, tokens and replies are read from the chat log, the one record of them)
    awaiting: Any = None  # the Future a SUSPENDED job waits on
    sites: Any = None  # replay table: call site -> Future, for the statement that waits
    exit_status: Any = None
    error: str | None = None
    exceptions = 0
    consecutive_exceptions = 0
    applied_seqs: Any = None  # queue id -> last applied sequence number (cross-prefix)
    definitions: Any = None  # name -> source of def/class/import statements (re-run on load)
    console_seen = 0  # console lines already shown to the model
    provider_failures = 0
    crashes = 0  # times a worker died while this job's code ran (see runtime.quarantine)
    tree_delegated = 0  # on a tree's root job: jobs delegated in the tree (max_delegates_per_tree)
    tree_root: Any = None  # on a delegated job: its tree's root, found without walking parents
    done_at: float | None = None  # when it last finished (the one timestamped status change)
    cancelled = False  # set by `cancel`: a cancelled job never runs again
    past_results: Any = None  # outcomes it had before messages re-opened it (models.past_outcomes)
    # budgets (statek.models.budget): the node this job spends against (its own or its
    # parent's), and the node that ran out while the job is suspended on it
    budget: Any = None
    budget_hold: Any = None

    def __init__(
        self,
        jobdef: JobDef,
        shared_vars: dict[str, Any] | None = None,
        locale: str | None = None,
        parent: Job | None = None,
    ) -> None:
        self.jobdef = jobdef
        self.created_at = time.time()
        if shared_vars:
            inline, other = job_locals.split(shared_vars)
            if inline:
                self.inline_vars = job_locals.encode_inline(inline)
            if other:
                self.vars = job_locals.flat_seed(other)
        if locale is not None:
            self.locale = locale
        if parent is not None:
            self.parent = parent
            root = parent.tree_root  # a chain of N delegations walked N parents per child
            self.tree_root = parent if root is None else root

    @classmethod
    def create(
        cls,
        jobdef: JobDef,
        shared_vars: dict[str, Any] | None = None,
        locale: str | None = None,
        parent: Job | None = None,
    ) -> Job:
        """Construct and anchor a job (anchoring inside `__init__` via `db0.materialized`
        makes creation cost grow with the jobs created, so it happens here)."""
        job = cls(jobdef, shared_vars, locale, parent)
        root_for().jobs.append(job)
        job.tag_new()
        return job

    def tag_new(self) -> None:
        """Tag a just-made job READY (creators call it once the job is anchored)."""
        db0.tags(self).add(status_values()[READY])

    # ----------------------------------------------------------------- reading
    @property
    def status(self) -> Any:
        """The JobStatus member (`db0.find(Job, JobStatus.X)` finds jobs by it)."""
        return status_value(self.state)

    @property
    def uuid(self) -> str:
        return str(db0.uuid(self))

    @property
    def agent(self) -> Agent:
        agent: Agent = self.jobdef.agent
        return agent

    @property
    def locals(self) -> LocalsView:
        return LocalsView(self)

    @property
    def console(self) -> list[str]:
        return [] if self.console_lines is None else list(self.console_lines)

    @property
    def chat_log(self) -> list[dict[str, Any]]:
        return [chatlog.decode(entry) for entry in chatlog.entries(self.chat)]

    @property
    def turns(self) -> int:
        """Model turns so far."""
        return chatlog.count_turns(self.chat)

    @property
    def pending_code(self) -> str | None:
        """The code of the model's last reply while it has not run yet."""
        ran = self.ran_turn
        if ran == ALL_TURNS_RAN or ran >= self.turns or self.state == DONE:
            return None
        from statek.execution.replies import extract_code

        turns = [e for e in self.chat_log if e["kind"] == chatlog.TURN]
        return extract_code(turns[-1]["reply"]) if turns else None

    @property
    def input_tokens(self) -> int:
        return sum(e["input_tokens"] for e in self.chat_log if e["kind"] == chatlog.TURN)

    @property
    def output_tokens(self) -> int:
        return sum(e["output_tokens"] for e in self.chat_log if e["kind"] == chatlog.TURN)

    @property
    def messages(self) -> list[Any]:
        """Every message pushed to this job, read or not."""
        return stored_inbox.messages_from(self, 0)

    @property
    def unread_messages(self) -> int:
        return stored_inbox.count(self) - int(self.inbox_read)

    @property
    def previous_results(self) -> list[dict[str, Any]]:
        """What the job had finished with each time a message re-opened it, oldest first:
        dicts of exit_status, error, finished_at and reopened_at."""
        return [dict(zip(PAST_RESULT_KEYS, r, strict=True))
                if type(r) is tuple or container_kind(r) == "Tuple"
                else dict(r)  # dicts: stored by earlier versions
                for r in past_outcomes.decoded(self.past_results)]

    @property
    def finished_at(self) -> float | None:
        return float(self.done_at) if self.state == DONE and self.done_at is not None else None

    @property
    def is_done(self) -> bool:
        return bool(self.state == DONE)

    @property
    def in_warmup(self) -> bool:
        return int(self.block) < len(self.jobdef.warmup_blocks)

    @property
    def budget_exhausted(self) -> Any:
        """A `BudgetExhausted` (which budget, spent vs limit, whose) while the job is
        suspended because a budget ran out; None otherwise."""
        hold = self.budget_hold
        if not is_held(self, hold):
            return None
        return hold.exhausted(time.time())

    def __repr__(self) -> str:
        return f"<Job {db0.uuid(self)} {self.status} of {self.jobdef.agent.role!r}>"

    # ----------------------------------------------------------------- writing
    def set_status(self, new: Any) -> None:
        """The one way a job's status changes (a JobStatus member, name or int state); an
        illegal move raises IllegalTransitionError."""
        move_status(self, self.state, new if type(new) is int else state_of(new))

    def write_console(self, text: str) -> None:
        """Append one print's text (escaped where dbzero cannot store it). Over
        `value_checks.MAX_CONSOLE_WRITE` characters raises ValueError: the print fails."""
        text = value_checks.console_text(text)
        if self.console_lines is None:
            self.console_lines = [text]
        else:
            self.console_lines.append(text)

    def log(self, entry: Any) -> int:
        """Append one chat-log entry (see `statek.models.chatlog`); returns the log's length."""
        replacement, count = chatlog.appended(self.chat, chatlog.encode(entry))
        if replacement is not None:
            self.chat = replacement
        return count

    def locals_dict(self) -> dict[str, Any]:
        """A plain copy of the locals (what job code runs against)."""
        return StoredLocals(self).values()

    def bind_locals(self, values: Mapping[str, Any], deleted: tuple[str, ...] = ()) -> None:
        """Persist assignments and deletions (the interpreter keeps a `StoredLocals` for a
        whole step instead, which reads the stored form once)."""
        StoredLocals(self).bind(values, deleted)
        job_locals.bound_externally(db0.uuid(self))

    def remember_definition(self, names: tuple[str, ...], source: str) -> None:
        """Keep the source of a def/class/import so a restarted worker can rebuild it."""
        if self.definitions is None:
            self.definitions = {name: source for name in names}
        else:
            for name in names:
                self.definitions[name] = source

    def take_message(self) -> Any:
        """Consume the oldest unread message (caller checked `unread_messages`)."""
        message = stored_inbox.message_at(self, int(self.inbox_read))
        self.inbox_read += 1
        return message

    def finish(self, exit_status: Any = None, error: str | None = None,
               job_uuid: str | None = None) -> bool:
        """Move to DONE, record why, and tell whoever waits on this job (`job_uuid`, this
        job's uuid when the caller knows it, spares reading it); returns whether it ended
        with `error` set (given, or set before without an exit status: a delegate budget)."""
        move_status(self, self.state, DONE)  # not self.set_status: a method looked up on a memo
        self.done_at = time.time()  # instance goes through dbzero's attribute lookup
        problem = value_checks.exit_status_problem(exit_status)
        if problem is not None:  # a bounded preview and a clear error instead
            if error is None:
                error = (f"exit status of type {type(exit_status).__name__} could not be "
                         f"stored: {problem}")
            exit_status = value_checks.safe_repr(exit_status)
        if exit_status is not None or self.exit_status is not None:
            self.exit_status = exit_status
        if error is not None:
            self.error = value_checks.error_text(error)
            failed = True
        else:  # read only without an exit status (an exit status means it ended well)
            failed = exit_status is None and self.error is not None
        if self.awaiting is not None:
            self.awaiting = None
        if self.sites is not None:
            self.sites = None
        signals.job_finished(db0.uuid(self) if job_uuid is None else job_uuid)
        return failed

    def resume(self) -> None:
        """SUSPENDED/DONE -> STARTED and tell the scheduler it is runnable."""
        move_status(self, self.state, STARTED)
        signals.job_runnable(db0.uuid(self), self)  # the scheduler needs no fetch for it

    def push_user_message(self, message: Any) -> None:
        """Record a message for the job; what happens next depends on its status.

        * running or READY: the job reads it with `wait_message()` or sees it in its next
          model turn;
        * SUSPENDED on `wait_message()`: the job wakes;
        * DONE: the job re-opens (STARTED) and the model's next turn shows the message. The
          result it had finished with is not lost: exit_status, error and finished_at move to
          `job.previous_results` (and a log line says so), then the job finishes afresh;
        * cancelled (`cancel_job`): refused with IllegalTransitionError and nothing is
          recorded; a cancelled job never runs again. A queued message meeting a cancelled job
          becomes a dead letter of its queue instead."""
        with transition():
            self.apply_messages([message])

    def check_takes_messages(self) -> None:
        """Raise IllegalTransitionError when the job was cancelled (it takes no messages)."""
        if self.cancelled:
            raise IllegalTransitionError(
                f"job {db0.uuid(self)} was cancelled ({self.error}): a cancelled job takes no "
                "messages and never runs again; submit a new job instead")

    def apply_messages(self, messages: list[Any], inbox: Any = None,
                       job_uuid: str | None = None,
                       reopened: list[str] | None = None, state: int | None = None) -> Any:
        """Record messages in order (one inbox write for the lot), then re-open or wake the job
        once (`push_user_message` says how). Callers hold a transition. `inbox` is what the
        last call returned for this job, if the caller kept it (`statek.models.inbox.deliver`
        says what it is), `job_uuid` its uuid if known; returns that for the next call. A
        caller delivering to many jobs passes `reopened`: a re-opened job's uuid is appended
        there for the caller's one summary line, and its own line goes out at DEBUG instead
        of INFO (with the log on a pipe, a line per job was most of a drain's time when it
        re-opened many jobs). `state` is the job's status if the caller read it in this
        transition, and then also found a DONE job not cancelled (`check_takes_messages`)."""
        if state is None:
            state = self.state
            if state == DONE:
                self.check_takes_messages()
        inbox = stored_inbox.deliver(self, messages, inbox)
        if state == DONE:
            job_uuid = job_uuid or db0.uuid(self)
            self.reopen(job_uuid, reopened)
        elif state == SUSPENDED:
            awaiting = self.awaiting
            if awaiting is not None and awaiting.waits_on_message() and awaiting.is_ready():
                self.resume()
        signals.job_messaged(job_uuid or db0.uuid(self))
        return inbox

    def reopen(self, job_uuid: str, reopened: list[str] | None = None) -> None:
        """DONE -> STARTED for a message; the finished result moves to `past_results`.
        Callers hold a transition and know the job is DONE and not cancelled."""
        exit_status, error = self.exit_status, self.error
        # PAST_RESULT_KEYS in order: a tuple, or a JSON string while plain (docs/costs.md C32)
        stored = past_outcomes.appended(self.past_results,
                                        (exit_status, error, self.done_at, time.time()))
        if stored is not None:
            self.past_results = stored
        level = logging.INFO
        if reopened is not None:
            reopened.append(job_uuid)
            level = logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "job %s re-opened by a message; its result (exit_status=%.200r, "
                    "error=%.200r) is kept in previous_results", job_uuid, exit_status, error)
        if exit_status is not None:
            self.exit_status = None
        if error is not None:
            self.error = None
        # whatever code it ran has ended; the model goes next (a read is ~4x cheaper than a
        # write, and a job re-opened before or finished after its reply's code has these)
        if self.block != WARMUP_OVER:
            self.block = WARMUP_OVER
        chat = self.chat
        if chat is None or type(chat) is str:
            turns = chatlog.count_turns(chat)
            if self.ran_turn != turns:
                self.ran_turn = turns
        else:  # a list: counting its turns here would read every line of a long log
            self.ran_turn = ALL_TURNS_RAN
        if self.stmt:
            self.stmt = 0
        # a fresh attempt: failures "in a row" that ended it are not in a row with the next
        # (total exceptions, turns and tokens still count against the job's limits)
        if self.provider_failures:
            self.provider_failures = 0
        if self.consecutive_exceptions:
            self.consecutive_exceptions = 0
        move_status(self, DONE, STARTED)  # `resume` without reading the status and uuid again
        signals.job_runnable(job_uuid, self)

    def cancel(self, reason: str = "cancelled") -> bool:
        """End the job now for good (unless already DONE); returns whether it was cancelled.
        A cancelled job is never re-opened: messages to it are refused. It ends like any
        failed job (README): `error` names the reason, `exit_status` stays None."""
        with transition():
            if self.state == DONE:
                return False
            self.finish(error=reason)
            self.cancelled = True
            return True


def log_reopened(logger: logging.Logger, reopened: list[str], by: str, named: int = 5) -> None:
    """One INFO line for the finished jobs one delivery call re-opened (`by` says what
    carried the messages); each job's own line went out at DEBUG (`Job.apply_messages`)."""
    if not reopened:
        return
    more = len(reopened) - named
    logger.info("%d finished job(s) re-opened by %s (%s%s); their results are kept in "
                "previous_results", len(reopened), by, ", ".join(reopened[:named]),
                f" and {more} more" if more > 0 else "")


def move_status(job: Job, current: int, target: int) -> None:
    """`Job.set_status` for a known current state: the int and the explicit tag moved
    together (an explicit tag, not a tag field: a move costs ~16k fewer instructions in
    dbzero). The job's uuid is read only to name an illegal move."""
    if current == target:
        return
    if target not in LEGAL_MOVES[current]:
        check_move(db0.uuid(job), current, target)
    values = status_values()
    tags = db0.tags(job)
    tags.remove(values[current])
    tags.add(values[target])
    job.state = target

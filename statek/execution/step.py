"""One step of a job: run its pending code, then (if it goes on) ask the model for more.

`execute_step` reads as the pipeline: each phase is one method of `_Step`, called there in
order, taking what it needs and returning what the next one uses. The synchronous phases run
inside `store.transition()`; every await (the model call, an async tool) is between them and
outside any transaction:

    phase          method              takes              returns
    1. load        load_limits         the job            the definition's facts and limits
    2. wake        wake                a SUSPENDED job    False while its future is unready
    3. admit       budgets.may_run     the step           False while a budget holds the job
    4. run code    run_code            warmup / reply     True when the model is asked next
    5. prepare     prepare_call        the transcript     a ModelCall (request, pending input)
    6. call model  call_model          the ModelCall      the ChatReply (awaited, no transaction)
    7. record      record_reply        call + reply       True when the reply's tools run next
    8. tools       run_native_tools    the reply          results appended to the chat log

The step's outcome (completed, suspended, retry_after) accumulates in `StepResult`.

Errors in job code, bad replies and provider failures are recorded on the job; nothing a job
does can make a step raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dbzero as db0

from statek import _json, store, worker_state
from statek.admission import budgets
from statek.admission.call import admitted_call
from statek.admission.registry import limiter_for
from statek.errors import ConfigurationError, ProviderError, SandboxViolation
from statek.execution import conversation, harness, turns, waiting
from statek.execution.harness import StepBudgetExceeded, budget_error, step_budget
from statek.execution.interpreter import (
    AWAITING_TOOL,
    COMPLETED,
    EXITED,
    FAILED,
    WAITING_ON_FUTURE,
    JobNamespace,
    Outcome,
    call_guarded,
    can_persist,
    run_block,
)
from statek.execution.job_functions import JobFunctions
from statek.execution.jobdef_facts import DefinitionInfo, definition_of
from statek.execution.replies import extract_code
from statek.models import chatlog, exit_preview, value_checks
from statek.models.job import ALL_TURNS_RAN, move_status
from statek.models.status import DONE, STARTED, SUSPENDED, WARMING_UP
from statek.observability import hooks
from statek.providers.deadline import bounded
from statek.providers.registry import generation as provider_generation
from statek.providers.registry import resolve_provider
from statek.providers.retry import is_retryable_status
from statek.providers.types import ChatMessage, ChatReply, ChatRequest
from statek.sandbox import SandboxPolicy, compile_block
from statek.tools import find_tool, tool_call_key

if TYPE_CHECKING:
    from statek.models.job import Job
    from statek.settings import StatekSettings

log = logging.getLogger("statek.step")


@dataclass(slots=True)
class StepResult:
    """What the scheduler needs to know after a step."""

    completed: bool = False  # the job reached DONE during this step
    failed: bool = False  # ... with `job.error` set (read from here: a stored read each)
    suspended: bool = False  # the job now waits on `job.awaiting`
    retry_after: float = 0.0  # > 0: a provider failed; try this job again after that many s
    ran: bool = True  # False when the job had nothing to do (still suspended, already done)


# The worker's state owner (statek.worker_state) keeps the policies by key and the resolved
# (provider, model) by (definition, runner default, settings default, registry generation).
_last_policy: list[Any] = [None, None, None]  # settings, restricted flag, policy


def sandbox_policy(cfg: StatekSettings | None = None) -> SandboxPolicy:
    """The policy for the bound settings (one object per distinct policy, looked up again
    only when the settings object or the restricted flag changes)."""
    if cfg is None:
        cfg = store.settings()
    restricted = store.restricted_mode()
    if _last_policy[0] is cfg and _last_policy[1] is restricted:
        return _last_policy[2]  # type: ignore[no-any-return]
    key = (restricted, tuple(cfg.allowed_imports), cfg.max_source_chars, cfg.max_ast_nodes)
    policies = worker_state.current().policies
    policy = policies.get(key)
    if policy is None:
        policy = SandboxPolicy(restricted=key[0], allowed_imports=frozenset(key[1]),
                               max_source_chars=key[2], max_ast_nodes=key[3])
        policies[key] = policy
    _last_policy[:] = [cfg, restricted, policy]
    return policy


@dataclass(slots=True)
class ModelCall:
    """What phase 5 prepared for the model call and phase 7 needs to record its reply."""

    provider: Any
    model: str
    request: ChatRequest
    pending: conversation.PendingInput
    turns: int  # model turns in the log before this one
    tokens: int  # tokens those turns used


class _Step:
    """State of one step of one job (lives for the duration of `execute_step`)."""

    budget: Any = None  # set by budgets.may_run when the job runs under a budget
    # The phases read these plain attributes, not properties or store.settings() calls:
    # a step makes ~110 Python calls; each saved is ~0.15% of its instructions (callgrind).
    defn: DefinitionInfo  # set by load_limits()
    limits: harness.Limits

    def __init__(self, job: Job, provider: str | None, job_uuid: str | None = None) -> None:
        self.job = job
        self.uuid: str = db0.uuid(job) if job_uuid is None else job_uuid
        self.provider = provider
        self.cfg = store.settings()  # bound for the whole step
        self.state = worker_state.current()  # the owner of the caches the phases read
        self.code_turn = 0  # the turn whose reply code phase 4 runs
        self._transcript: conversation.Transcript | None = None
        self.result = StepResult()

    def load_limits(self) -> None:
        """The definition's cached facts and harness limits (raises for a job param that is
        not a number)."""
        info = self.defn = definition_of(self.job, self.uuid, self.state, self.cfg)
        self.limits = info.limits
        if hooks.ON:
            hooks.step_defined(info)

    def transcript(self) -> conversation.Transcript:
        """The job's transcript, looked up once per step (`conversation.record` updates it
        in place)."""
        if self._transcript is None:
            self._transcript = conversation.transcript(self.job, self.uuid, self.state)
        return self._transcript

    @property
    def jobdef(self) -> Any:
        return self.job.jobdef

    def wake(self) -> bool:
        """Phase 2 (a SUSPENDED job): STARTED again once its future is ready; False if not."""
        job = self.job
        future = job.awaiting
        with store.transition():
            if future is not None and not future.is_ready():
                return False
            job.awaiting = None
            job.set_status(STARTED)
        return True

    # ------------------------------------------------------------------ helpers
    def finish(self, exit_status: Any = None, error: str | None = None) -> None:
        if exit_status is not None and not can_persist(exit_status):
            text = exit_preview.preview(exit_status)
            if text is not None:  # e.g. an instance of a class the job defined
                self.job.write_console(f"[statek] exit status of type {type(exit_status).__name__} "
                                       "cannot be stored; its repr() is kept instead\n")
                exit_status = text
        # a status still unstorable (too large, an int repr() refuses): Job.finish records a
        # bounded preview and an error naming the problem; per-job caches drop the job
        job = self.job
        failed = job.finish(exit_status, error, self.uuid)
        if job.inbox is not None and self._unread_at_the_end(failed):
            return  # re-opened: not completed
        if error is not None:  # within the step: the record carries the job's context
            log.info("job ended with an error: %s", error[:500])
        self.result.completed = True
        self.result.failed = failed

    def _unread_at_the_end(self, failed: bool) -> bool:
        """Messages came while the job ran that nothing read (no model turn showed them, no
        `wait_message()` took them). Ended well, the job re-opens, as it would for a
        message arriving a moment later: the model's next turn shows them (True). Ended by
        an error (a limit, a provider given up on), re-opening would meet the same end
        again and again: the error says they were not read (False)."""
        job = self.job
        unread = job.unread_messages
        if unread <= 0:
            return False
        if not failed:
            job.reopen(self.uuid)
            return True
        job.error = value_checks.error_text(
            f"{job.error} ({unread} message(s) pushed to it were not read)")
        return False

    def log(self, entry: tuple[Any, ...]) -> None:
        """Append to the job's chat log and keep the cached transcript in step (steps are the
        only writers of a log, which is what lets the transcript be trusted)."""
        conversation.record(self.state, self.uuid, self.job.log(entry), entry)

    def violation(self, exc: SandboxViolation) -> None:
        self.job.write_console(f"[statek] refused: {exc}\n")

    # ------------------------------------------------------------------ phase 4 (run code)
    def code_to_run(self) -> tuple[str, str, bool] | None:
        """(source, replay key, is warmup) of the next code, or None."""
        job = self.job
        blocks = self.defn.warmup_blocks
        block = int(job.block)
        if block < len(blocks):
            return blocks[block], f"w{block}", True
        # the last reply's code is pending until its run is recorded in `ran_turn`
        log = self.transcript()
        turns = log.turns
        ran = int(job.ran_turn)
        if ran >= turns:
            return None
        if ran == ALL_TURNS_RAN:  # re-opened: every turn so far has run
            job.ran_turn = turns
            return None
        reply = log.last_reply
        code = None if reply is None else extract_code(reply)
        if code is None:
            return None
        self.code_turn = turns
        return code, f"r{turns}", False

    async def run_code(self) -> bool:
        """Phase 4; True when the step goes on to the model."""
        namespace: JobNamespace | None = None
        policy = sandbox_policy(self.cfg)
        if self.cfg.isolation == "process":  # job code runs in executor processes
            from statek.isolation.runner import run_code_isolated

            return await run_code_isolated(self, policy)
        awaited = False  # since the status was read: a cancel may have come in meanwhile
        while True:
            if turns.turn_spent():  # long code before this in the turn: let the loop poll
                await turns.next_turn(namespace is not None)
                awaited = True
            with store.transition():
                if awaited and self.job.state == DONE:  # cancelled: it never runs again
                    return False
                found = self.code_to_run()
                if found is None:
                    return True
                source, key, warmup = found
                if namespace is not None and namespace.functions.code_key != key:
                    namespace = None  # the next warmup block: its own replay keys
                try:
                    block = compile_block(source, policy)
                except SandboxViolation as exc:
                    return self.code_failed(f"SandboxViolation: {exc}", warmup)
                if namespace is None:
                    namespace = JobNamespace(self.job, self.uuid, policy, key,
                                             self.violation, self.defn, self.state)
                start = int(self.job.stmt)
                outcome = run_block(namespace, namespace.functions, block, start)
                go_on = self.apply(outcome, warmup, start)
            if outcome.kind == AWAITING_TOOL:
                assert outcome.tool is not None
                await self.await_tool(namespace.functions, outcome)
                awaited = True
                continue
            if outcome.kind in (COMPLETED, WAITING_ON_FUTURE) and namespace is not None:
                namespace.keep()  # in step with storage: reusable by the job's next step
            if not go_on:
                return False
            if outcome.kind == COMPLETED and warmup:
                continue  # next warmup block
            return True

    def apply(self, outcome: Outcome, warmup: bool, start: int) -> bool:
        """Record an outcome of phase 4 (of a run from statement `start`, the stored resume
        point); True when the step may continue."""
        job = self.job
        kind = outcome.kind
        if kind == EXITED:
            # No `ran_turn` or `block` write: a DONE job has nothing pending, and a message
            # re-opening it marks the warmup and every turn so far as run.
            if start:
                job.stmt = 0
            self.finish(outcome.exit_status)
            return False
        if kind is WAITING_ON_FUTURE:
            job.stmt = outcome.next_stmt
            job.awaiting = outcome.future
            job.set_status(SUSPENDED)
            self.result.suspended = True
            return False
        if kind == AWAITING_TOOL:
            job.stmt = outcome.next_stmt
            if warmup and job.state != WARMING_UP:
                job.set_status(WARMING_UP)
            return True
        if kind == FAILED:
            assert outcome.error is not None
            if outcome.fatal:  # over the code budget: the job ends, whatever its limits
                job.write_console(outcome.error + "\n")
                job.exceptions = int(job.exceptions) + 1
                if start:
                    job.stmt = 0
                self.finish(error=outcome.error)
                return False
            return self.code_failed(outcome.error, warmup)
        # COMPLETED
        if job.consecutive_exceptions:
            job.consecutive_exceptions = 0
        if start:
            job.stmt = 0
        if warmup:
            block = job.block = int(job.block) + 1
            if block >= len(self.defn.warmup_blocks):
                job.set_status(STARTED)
        else:
            job.ran_turn = self.code_turn
        return True

    def code_failed(self, error: str, warmup: bool) -> bool:
        job = self.job
        job.write_console(error if error.endswith("\n") else error + "\n")
        job.exceptions = int(job.exceptions) + 1
        job.consecutive_exceptions = int(job.consecutive_exceptions) + 1
        if warmup:
            self.jobdef.record_error("warmup", error, job=self.uuid)
            job.block = len(self.defn.warmup_blocks)  # a re-opened job goes to the model
            self.finish(error=f"warmup failed: {_last_line(error)}")
            return False
        job.ran_turn = self.code_turn
        job.stmt = 0
        reason = harness.breach_after_code(job, self.limits)
        if reason is not None:  # the cause too: the console is not where users look first
            self.finish(error=f"{reason}; the last: {_last_line(error)}")
            return False
        return True

    async def await_tool(self, functions: JobFunctions, outcome: Outcome) -> None:
        call = outcome.tool
        assert call is not None
        waiting.about_to_wait()  # the statements before the tool's are recorded
        try:
            with (tool_call_key(f"{self.uuid}:{call.site}"),
                  hooks.observed_tool(getattr(call.awaitable, "__name__", None))):
                value: Any = await bounded(call.awaitable, self.limits.step_timeout)
        except BaseException as exc:  # the tool's, BaseException included; not our own cancel
            reraise_if_cancelled(exc)
            value = exc
        functions.tool_results[call.site] = value

    # ------------------------------------------------------------------ phases 5-8
    def prepare_call(self) -> ModelCall | None:
        """Phase 5: the request for the model, or None when the job ends or has no provider."""
        job = self.job
        with store.transition():
            state = job.state
            if state == DONE:  # cancelled while phase 4 awaited a tool: nothing to ask
                return None
            if state != STARTED:
                move_status(job, state, STARTED)  # set_status would read the status again
            # read once here, reused when the reply is recorded (each read costs ~0.5 µs)
            log = self.transcript()
            turns, tokens = log.turns, log.tokens
            reason = harness.breach_before_request(turns, tokens, self.limits)
            if reason is not None:
                self.finish(error=reason)
                return None
            pending = conversation.pending_user_text(job, turns,
                                                     conversation.answered_in_prose(log))
        try:
            prov, model = self.resolve()
        except Exception as exc:  # e.g. no provider of that name: a failed call, not a crash
            self.provider_failed(exc)
            return None
        return ModelCall(prov, model, self.build_request(pending.text, model), pending, turns,
                         tokens)

    async def call_model(self, call: ModelCall) -> ChatReply | None:
        """Phase 6: the provider's reply (None when the call failed: recorded on the job)."""
        prov, request = call.provider, call.request
        waiting.about_to_wait()  # the turn's code ran: commit it while the model answers
        try:
            gate = limiter_for(prov, call.model)  # None (one check) unless rate limits are set
            if gate is None:
                reply = await bounded(prov.complete(request), self.limits.step_timeout)
            else:  # queued (outside the step timeout) until the shared limits admit it
                reply = await admitted_call(gate, request, self.defn.metadata, lambda: bounded(
                    prov.complete(request), self.limits.step_timeout))
            if not isinstance(reply, ChatReply):
                raise ProviderError(f"provider returned {type(reply).__name__}, not ChatReply")
        except Exception as exc:  # ProviderError by contract; anything else is the same to us
            self.provider_failed(exc, prov)
            return None
        return reply

    def resolve(self) -> tuple[Any, str]:
        key = (self.defn.uuid, self.provider, self.cfg.default_provider,
               provider_generation())
        resolved = self.state.resolved_providers
        found = resolved.get(key)
        if found is None:
            found = resolve_provider(self.defn.metadata, self.provider, key[2])
            if len(resolved) >= 1024:
                resolved.clear()
            resolved[key] = found
        return hooks.observe_provider(found) if hooks.ON else found

    def build_request(self, user_text: str, model: str) -> ChatRequest:
        system, tools = conversation.system_prompt(self.defn.agent, self.defn.uuid,
                                                    self.state)
        past = self.transcript().messages
        return ChatRequest(model=model, system=system,
                           messages=(*past, ChatMessage("user", user_text)), tools=tools,
                           max_tokens=self.cfg.reply_max_tokens)

    def record_reply(self, call: ModelCall, reply: ChatReply) -> bool:
        """Phase 7: the turn in the chat log; True when the reply's native tools run next."""
        with store.transition():
            if self.job.state == DONE:  # cancelled while the model answered: drop the reply
                return False
            self._record_turn(reply, call)
        return bool(reply.tool_calls) and not self.result.completed

    def _record_turn(self, reply: ChatReply, call: ModelCall) -> None:
        job = self.job
        pending, turns, tokens = call.pending, call.turns, call.tokens
        usage = reply.usage
        in_tok, out_tok = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
        calls = [(c.id, c.name, _json.dumps(dict(c.arguments)).decode()) for c in reply.tool_calls]
        entry = chatlog.turn(pending.text, pending.console_from, pending.console_to,
                             reply.content, calls, in_tok, out_tok)
        self.log(entry)  # one more turn
        if pending.console_to != pending.console_from:  # each stored write costs ~2-5 µs
            job.console_seen = pending.console_to
        if pending.messages_read:
            job.inbox_read = int(job.inbox_read) + pending.messages_read
        tokens += in_tok + out_tok  # the log has the counts: nothing else to store
        budget = None if self.budget is None else job.budget  # charged up the tree now,
        if budget is not None:  # checked at the end (unbudgeted steps read nothing)
            budgets.charge_reply(self, budget, in_tok, out_tok)
        empty = not reply.tool_calls and not reply.content.strip()
        if job.provider_failures and not empty:  # recovered: the retried failure is history
            job.provider_failures = 0  # (chat log), not the job's error (a DONE job with one
            job.error = None  # has failed)
        reason = harness.breach_of_tokens(tokens, self.limits)
        if reason is not None:
            job.ran_turn = turns + 1  # the reply over budget is never run
            self.finish(error=reason)
            return
        if empty:
            # asked again at once, as a reply in prose is, a mute model spent the job's turns
            # in a second (a new user's trial: 50 calls, then "max_turns reached"): its turn
            # and tokens count, then it is a failed call, asked again after a backoff
            self.provider_failed(ProviderError(
                "the model's reply was empty (no text, no tool calls; finish_reason "
                f"{reply.finish_reason!r})", retryable=True), call.provider)
            return
        # the reply's code (if any) is now pending: it is read back from the log
        if extract_code(reply.content) is not None:
            if job.stmt:
                job.stmt = 0
        elif not reply.tool_calls and self.defn.metadata.get("DIALOG"):
            self.finish(exit_status=reply.content)
        if budget is not None and not self.result.completed:
            budgets.check_after_reply(self, budget)

    async def run_native_tools(self, reply: ChatReply) -> None:
        """Phase 8: run the reply's native tool calls and append their results to the log."""
        results: list[tuple[str, str, str]] = []
        over_budget = ""  # the sync tool stopped at the step's code budget
        for call in reply.tool_calls:
            info = find_tool(call.name)
            if info is None or call.name not in self.defn.tool_names:
                results.append((call.id, call.name, f"error: no tool named {call.name!r}"))
                continue
            if call.problem is not None:
                results.append((call.id, call.name, f"error: the arguments could not be read: "
                                f"{call.problem}; call {call.name} again with a JSON object"))
                continue
            try:
                with tool_call_key(f"{self.uuid}:{call.id}"), hooks.observed_tool(call.name):
                    if info.is_async:
                        waiting.about_to_wait()
                        value = await bounded(info.func(**dict(call.arguments)),
                                              self.limits.step_timeout)
                    else:  # the worker's thread: bounded like job code calling it
                        value = call_guarded(self.uuid, step_budget.get(), info.func,
                                             **call.arguments)
                results.append((call.id, call.name, repr(value)))
            except StepBudgetExceeded:
                over_budget = call.name
                results.append((call.id, call.name, "error: stopped: over the step's "
                                "step_code_budget"))
                break  # the job ends: its other calls do not run
            except BaseException as exc:
                reraise_if_cancelled(exc)
                results.append((call.id, call.name, f"error: {type(exc).__name__}: {exc}"))
        with store.transition():
            for call_id, name, text in results:
                self.log(chatlog.tool_result(call_id, name, value_checks.tool_result_text(text)))
            budget = step_budget.get()
            if over_budget and budget is not None:
                self.finish(error=budget_error(budget, f"the tool {over_budget} the model "
                                                       "called"))

    def provider_failed(self, exc: BaseException, provider: object = None) -> None:
        """Record a failed model call: a configuration error (no provider for the job, no API
        key) or a final client error (a 404, a 401) ends the job at once; others retry the
        step with backoff, up to `harness.MAX_PROVIDER_FAILURES` in a row."""
        job = self.job
        if isinstance(exc, TimeoutError):
            message = (f"provider timed out after {self.limits.step_timeout}s (step_timeout: "
                       "the job param, or STATEK_STEP_TIMEOUT)")
        elif isinstance(exc, ProviderError):
            message = f"provider error: {exc}"
        else:
            message = f"provider error: {type(exc).__name__}: {exc}"
        with store.transition():
            self.log(chatlog.error(message))
            job.error = message
            if isinstance(exc, ConfigurationError) or _refused_for_good(exc):
                self.finish(error=message)  # no provider, no key, a 4xx: asking again won't help
                return
            job.provider_failures = int(job.provider_failures) + 1
            if job.provider_failures >= harness.MAX_PROVIDER_FAILURES:
                self.finish(error=f"{message} ({job.provider_failures} failures in a row)")
            else:
                self.result.retry_after = min(60.0, 2.0 ** int(job.provider_failures))
                if hooks.ON:
                    hooks.step_retries_call(provider, exc)


def _refused_for_good(exc: BaseException) -> bool:
    """The server answered with a final client error (400, 401, 403, 404, 422...): the same
    request will be refused again, so the step is not retried (408 and 429 are retried)."""
    status = getattr(exc, "status", None) if isinstance(exc, ProviderError) else None
    return status is not None and 400 <= status < 500 and not is_retryable_status(status)


async def execute_step(job: Job, provider: str | None = None,
                       job_uuid: str | None = None) -> StepResult:
    """Run one step; see the module docstring. Never raises for anything a job does.
    `job_uuid`, when the caller knows it, spares a `db0.uuid` (~1 µs, 1% of a step)."""
    state = job.state
    if state == DONE:
        return StepResult(ran=False)
    step = _Step(job, provider, job_uuid)
    budget_token = None
    try:
        step.load_limits()
        limit = step.limits.code_budget
        if limit > 0:
            budget_token = step_budget.set(harness.CodeBudget(limit, limit))
        if state == SUSPENDED and not step.wake():
            return StepResult(suspended=True, ran=False)
        if budgets.may_run(step) and await step.run_code():
            call = step.prepare_call()
            if call is not None:
                reply = await step.call_model(call)
                if reply is not None and step.record_reply(call, reply):
                    await step.run_native_tools(reply)
    except BaseException as exc:  # whatever a job or a tool raised; the worker's cancel goes on
        reraise_if_cancelled(exc)
        _internal_error(step, exc)
    finally:
        if budget_token is not None:
            step_budget.reset(budget_token)
    return step.result


def reraise_if_cancelled(exc: BaseException) -> None:
    """Re-raise `exc` when it is this step's own cancellation (the worker stopping, a
    timeout around the step); any other exception, a CancelledError a tool raised itself
    included, is the job's to record."""
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise exc


def _internal_error(step: _Step, exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(exc))
    with contextlib.suppress(Exception), store.transition():
        step.job.write_console(f"[statek] internal error:\n{text}")
        step.jobdef.record_error("internal", text, job=step.uuid)
        if step.job.state != DONE:
            step.finish(error=f"internal error: {type(exc).__name__}: {exc}")
        else:  # it failed half-way through finishing: still a completion, with the reason
            if step.job.error is None:
                step.job.error = f"internal error: {type(exc).__name__}: {exc}"
            step.result.completed = step.result.failed = True


def _last_line(error: str) -> str:
    """The line of a traceback that names the exception (its last; `finish` bounds the
    error it is put in, saying how much was cut)."""
    lines = error.strip().splitlines()
    return lines[-1] if lines else "(no message)"

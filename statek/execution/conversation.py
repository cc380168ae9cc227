"""What the model is shown: the system prompt and the message history of a job.

The history, the tokens used and the last reply are derived from the persisted chat log (the
one record of a job's turns) and cached in memory per job, extended as steps append, so a
step neither re-reads the log nor stores counts that duplicate it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from statek import _json, worker_state
from statek.execution.replies import extract_code
from statek.models import chatlog
from statek.models.inbox import unread
from statek.providers.types import ChatMessage, ToolCall, ToolSpec
from statek.tools import find_tool

if TYPE_CHECKING:
    from statek.models.agent import Agent
    from statek.models.job import Job
    from statek.worker_state import WorkerState

CACHE_SIZE = 20_000
MAX_CONSOLE_CHARS = 8_000

CODE_FIRST_GUIDE = """\
You work inside a persistent Python session. Reply with Python code in one ```python block; \
it runs and you see what it prints. Variables persist between replies. Call exit(result) \
when the task is done. Functions: delegate(agent, **vars) starts a helper job and returns a \
future, sleep(seconds) and sleep_until(when) return timer futures, wait_message() a future \
for the next message, get_all(*futures) / get_any(*futures) combine them, wait_for(check, \
*args, poll=1.0) is ready once the module-level function check returns true for args; reading \
`future.value` waits for it. set_budget(child, tokens=..., cost=..., steps=..., seconds=...) \
gives a delegated job (its future) a budget of its own. `params` is a read-only mapping of \
this job's parameters."""

# Per-job transcripts and per-definition prompts live on the worker's state owner
# (statek.worker_state): `transcripts` (per job, least recently used dropped first), `prompts`.


def forget(job_uuid: str) -> None:
    worker_state.current().transcripts.pop(job_uuid, None)


def system_prompt(agent: Agent, definition: str,
                  state: WorkerState) -> tuple[str, tuple[ToolSpec, ...]]:
    """(system prompt, native tool specs) for the agent of job definition `definition` (a
    uuid), computed once per prompt text (the text is read each time: it may be edited)."""
    key = (definition, agent.system_prompt)
    prompts = state.prompts
    found = prompts.get(key)
    if found is not None:
        return found
    tools = [t for t in (find_tool(name) for name in agent.tool_names) if t is not None]
    parts = [agent.system_prompt.strip(), CODE_FIRST_GUIDE]
    if tools:
        parts.append("Tools you can call from your code:\n" +
                     "\n".join(f"- {t.describe()}" for t in tools))
    specs = tuple(ToolSpec(t.name, t.doc, t.parameters) for t in tools)
    result = ("\n\n".join(p for p in parts if p), specs)
    prompts[key] = result
    return result


def _messages_of(entry: Sequence[Any]) -> list[ChatMessage]:
    kind = entry[0]
    if kind == chatlog.TURN:
        calls = tuple(ToolCall(c[0], c[1], _json.loads(c[2])) for c in entry[6])
        return [ChatMessage("user", entry[2]), ChatMessage("assistant", entry[5], calls)]
    if kind == chatlog.TOOL:
        return [ChatMessage("tool", entry[4], tool_call_id=entry[2])]
    return []


@dataclass(slots=True)
class Transcript:
    """What a step needs from a job's log, kept per process so a step does not re-read and
    decode it: the messages of past turns, how many turns, the tokens they used and the
    last reply."""

    length: int  # entries in the log
    messages: tuple[ChatMessage, ...]
    turns: int  # model turns in the log
    tokens: int  # input + output tokens of every turn
    last_reply: str | None  # what the model answered in the last turn


def transcript(job: Job, job_uuid: str, state: WorkerState) -> Transcript:
    """From the cache when it has the job (only steps append to a log, and they keep the
    cache in step through `record`); else decoded from the stored log once."""
    transcripts = state.transcripts
    cached = transcripts.get(job_uuid)
    if cached is not None:
        transcripts.move_to_end(job_uuid)
        return cached
    log = job.chat
    found = Transcript(chatlog.length(log), (), 0, 0, None)
    messages: list[ChatMessage] = []
    for entry in chatlog.entries(log):
        messages.extend(_messages_of(entry))
        _count(found, entry)
    found.messages = tuple(messages)
    _remember(transcripts, job_uuid, found)
    return found


def _count(found: Transcript, entry: Sequence[Any]) -> None:
    if entry[0] == chatlog.TURN:
        found.turns += 1
        found.tokens += int(entry[7]) + int(entry[8])
        found.last_reply = entry[5]


def _remember(transcripts: OrderedDict[str, Transcript], job_uuid: str,
              found: Transcript) -> None:
    transcripts[job_uuid] = found
    transcripts.move_to_end(job_uuid)
    if len(transcripts) > CACHE_SIZE:
        transcripts.popitem(last=False)


def record(state: WorkerState, job_uuid: str, new_length: int, entry: Sequence[Any]) -> None:
    """After appending `entry` to the log, bring the cached transcript up to date."""
    transcripts = state.transcripts
    cached = transcripts.get(job_uuid)
    if cached is None:
        return
    if cached.length != new_length - 1:  # out of step (not through steps): rebuild later
        del transcripts[job_uuid]
        return
    cached.length = new_length
    added = _messages_of(entry)
    if added:
        cached.messages += tuple(added)
    _count(cached, entry)


class PendingInput(NamedTuple):
    """What the model has not seen yet, and where it came from."""

    text: str
    console_from: int
    console_to: int
    messages_read: int


NO_CODE_HINT = ("(nothing ran: your last reply had no Python code. Reply with Python code in "
                "one ```python block; call exit(result) when the task is done.)")


def answered_in_prose(log: Transcript) -> bool:
    """Whether the model's last reply ran nothing: no code in it and no native tool calls
    (their results follow it in the log)."""
    reply = log.last_reply
    if reply is None or extract_code(reply) is not None or not log.messages:
        return False
    last = log.messages[-1]
    return last.role == "assistant" and not last.tool_calls


def pending_user_text(job: Job, turns: int, prose: bool = False) -> PendingInput:
    """New console output and unread messages of a job that has had `turns` turns. After a
    reply in `prose` (`answered_in_prose`) the model is told first that nothing ran: shown
    only "(no output)", a model that forgot the protocol repeats itself until the job runs
    out of turns."""
    console = job.console_lines
    seen = int(job.console_seen)
    total = 0 if console is None else len(console)
    parts: list[str] = []
    if prose:
        parts.append(NO_CODE_HINT)
    if turns == 0:
        values = job.locals_dict()
        if values:
            shown = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
            parts.append(f"Variables in your session: {shown}")
    if total > seen:
        out = "".join(console[seen:total])
        if len(out) > MAX_CONSOLE_CHARS:
            out = "[... output truncated ...]\n" + out[-MAX_CONSOLE_CHARS:]
        parts.append(f"Output:\n{out}")
    head = job.inbox
    unread_count = 0
    if head is not None:
        messages = unread(job, head)
        unread_count = len(messages)
        parts.extend(f"Message: {message}" for message in messages)
    if not parts:
        parts.append("(no output)" if turns else "Begin.")
    return PendingInput("\n\n".join(parts), seen, total, unread_count)


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

"""Scripted conversations the mock model servers hold with jobs, and what each job must end as.

Rules match on what only the previous step can have produced (console output, a tool result),
never on turn numbers, so many jobs may talk to one server at once in any order. Every rule
also requires the provider's credentials and the model name, and the first one the agent's
system prompt: a request missing any of them falls through to the `unmatched` rule, whose
exit value names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dbzero as db0

import statek
from tests.e2e import tools
from tests.e2e.helpers import (
    FakeLLM,
    anthropic_headers,
    code_reply,
    openai_headers,
    rule,
    unmatched_rule,
)


@dataclass(frozen=True)
class Provider:
    """How jobs reach one mock server: provider name, model, the headers it must send."""

    name: str
    model: str
    headers: Mapping[str, str]

    @property
    def metadata(self) -> dict[str, str]:
        return {"MODEL": f"{self.name}/{self.model}"}


def openai(model: str = "e2e-gpt-model") -> Provider:
    return Provider("openai", model, openai_headers())


def anthropic(model: str = "e2e-claude-model") -> Provider:
    return Provider("anthropic", model, anthropic_headers())


def server_of(provider: Provider, servers: Any) -> FakeLLM:
    return servers.openai if provider.name == "openai" else servers.anthropic  # type: ignore[no-any-return]


TOOL_FLOW_TOOLS = (tools.e2e_echo, tools.e2e_guarded, tools.e2e_loop_kind, tools.e2e_divide)


@dataclass(frozen=True)
class ToolFlow:
    """Turn 1 calls three async tools and a raising sync tool; turn 2 exits with their
    results. `marker` names the agent (its system prompt) and the rules."""

    marker: str
    provider: Provider

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Work in Python."

    @property
    def first_code(self) -> str:
        return ("echoed = e2e_echo(word)\n"
                "guarded = e2e_guarded(word)\n"
                "kind = e2e_loop_kind()\n"
                "try:\n"
                "    e2e_divide(1, 0)\n"
                "except ZeroDivisionError as exc:\n"
                "    print('sync tool raised', repr(exc))\n"
                f"print('{self.marker}', 'tools', 'ok')")

    LAST_CODE = "exit([echoed, guarded, kind])"

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        return [
            rule(f"{self.marker}-finish", self.LAST_CODE, contains=f"{self.marker} tools ok",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", self.first_code, contains=self.system_prompt,
                 model=p.model, headers=p.headers),
        ]

    def agent(self, role: str | None = None) -> statek.Agent:
        return statek.Agent(role or self.marker, self.system_prompt, tools=TOOL_FLOW_TOOLS,
                            metadata=self.provider.metadata)

    def check(self, job: Any, word: str, loop_kind: str) -> None:
        """The job ran both turns against the server and every tool did its work."""
        assert_done(job, [f"ECHO:{word}", f"{word}:same-task", loop_kind])
        assert job.console == ["sync tool raised ZeroDivisionError('division by zero')\n",
                               f"{self.marker} tools ok\n"]
        log = job.chat_log
        assert [e["kind"] for e in log] == ["turn", "turn"], log
        assert [e["reply"] for e in log] == [code_reply(self.first_code),
                                             code_reply(self.LAST_CODE)]
        assert log[0]["user"] == f"Variables in your session: word = {word!r}"
        assert log[1]["user"].startswith("Output:\n")
        assert f"{self.marker} tools ok" in log[1]["user"]

    def check_server(self, server: FakeLLM, jobs: int, before: Mapping[str, int]) -> None:
        """The server answered exactly two requests per job, on the provider's endpoint, for
        the model the agent named."""
        stats = server.stats()
        names = (f"{self.marker}-start", f"{self.marker}-finish")
        for name in names:
            count = stats["by_rule"].get(name, 0) - before.get(name, 0)
            assert count == jobs, (name, stats["by_rule"])
        seen = [(r["api"], r["model"], r["stream"]) for r in stats["recent"]
                if r["matched_rule"] in names]
        assert seen and set(seen) == {(self.provider.name, self.provider.model, False)}, seen


def load(server: FakeLLM, *scripts: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Install the scripts' rules (plus the catch-all) on `server`; returns the rule counts
    before the run, for `check_server`."""
    rules = [r for script in scripts for r in script]
    server.load([*rules, unmatched_rule(f"unmatched-{server.name}")])
    return {str(k): int(v) for k, v in server.stats()["by_rule"].items()}


def assert_no_unmatched(server: FakeLLM, before: Mapping[str, int]) -> None:
    name = f"unmatched-{server.name}"
    counts = server.stats()["by_rule"]
    extra = counts.get(name, 0) - before.get(name, 0)
    assert extra == 0, f"{extra} request(s) to {server.name} matched no rule: " \
                       f"{server.stats()['recent'][:extra]}"


def assert_done(job: Any, exit_value: Any) -> None:
    """DONE with that exit value and no error, at least one model turn, tokens counted."""
    assert str(job.status) == "DONE", (job, job.error, job.console)
    assert job.error is None, (job.error, job.chat_log)
    value = job.exit_status
    if isinstance(exit_value, list):
        value = list(value)
    assert value == exit_value, (value, job.console, job.chat_log)
    assert job.turns >= 1
    assert job.input_tokens > 0 and job.output_tokens > 0


def fetch_job(uuid: str) -> Any:
    return db0.fetch(uuid)


@dataclass(frozen=True)
class Recovery:
    """Turn 1 runs `code`, which fails; turn 2 answers the failure text the model was shown
    (`needle`, which the code's own text does not contain) by exiting with `exit_value`."""

    marker: str
    provider: Provider
    code: str
    needle: str
    exit_value: str

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Work in Python."

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        assert self.needle not in self.code and self.needle not in self.system_prompt
        return [
            rule(f"{self.marker}-recover", f"exit({self.exit_value!r})", contains=self.needle,
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", self.code, contains=self.system_prompt,
                 model=p.model, headers=p.headers),
        ]

    def agent(self, tools_: Sequence[Any]) -> statek.Agent:
        return statek.Agent(self.marker, self.system_prompt, tools=tools_,
                            metadata=self.provider.metadata)

    def check(self, job: Any) -> None:
        """Failed once in job code (the model saw why), then recovered and exited."""
        assert_done(job, self.exit_value)
        assert job.exceptions == 1, job.console
        assert self.needle in "".join(job.console)
        log = job.chat_log
        assert [e["kind"] for e in log] == ["turn", "turn"], log
        assert self.needle in log[1]["user"]


@dataclass(frozen=True)
class NativeToolFlow:
    """The model calls e2e_echo as a native tool call (the server's own wire format for
    tool calls and results); the next turn sees the result and exits."""

    marker: str
    provider: Provider

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Use tools."

    @property
    def text(self) -> str:
        return f"native-{self.marker.lower()}"

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        call = {"name": "e2e_echo", "arguments": {"text": self.text}}
        return [
            rule(f"{self.marker}-finish", "exit('native ok')", tool_result=f"ECHO:{self.text}",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", None, contains=self.system_prompt, model=p.model,
                 headers=p.headers, tool_calls=[call]),
        ]

    def agent(self) -> statek.Agent:
        return statek.Agent(self.marker, self.system_prompt, tools=[tools.e2e_echo],
                            metadata=self.provider.metadata)

    def check(self, job: Any) -> None:
        assert_done(job, "native ok")
        log = job.chat_log
        assert [e["kind"] for e in log] == ["turn", "tool", "turn"], log
        (call,) = log[0]["tool_calls"]
        assert call[1] == "e2e_echo" and call[0], call
        assert log[1]["call_id"] == call[0] and log[1]["name"] == "e2e_echo"
        assert log[1]["result"] == repr(f"ECHO:{self.text}")


@dataclass(frozen=True)
class UnreadableArgumentsFlow:
    """The model calls e2e_echo natively with arguments that are a JSON list, not an object:
    the call is answered with an error naming the problem (not run, not a failed reply), the
    model calls again properly, and the third turn exits with the echo."""

    marker: str
    provider: Provider

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Use tools, carefully."

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        good = {"name": "e2e_echo", "arguments": {"text": f"again-{self.marker.lower()}"}}
        bad = {"name": "e2e_echo", "arguments": ["not", "an", "object"]}
        return [
            rule(f"{self.marker}-finish", "exit('echoed')", tool_result="ECHO:again-",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-retry", None, tool_result="could not be read", model=p.model,
                 headers=p.headers, tool_calls=[good]),
            rule(f"{self.marker}-start", None, contains=self.system_prompt, model=p.model,
                 headers=p.headers, tool_calls=[bad]),
        ]

    def agent(self) -> statek.Agent:
        return statek.Agent(self.marker, self.system_prompt, tools=[tools.e2e_echo],
                            metadata=self.provider.metadata)

    def check(self, job: Any) -> None:
        assert_done(job, "echoed")
        log = job.chat_log
        assert [e["kind"] for e in log] == ["turn", "tool", "turn", "tool", "turn"], log
        assert log[1]["name"] == "e2e_echo", log[1]
        assert log[1]["result"] == ("error: the arguments could not be read: a JSON list, not "
                                    "an object; call e2e_echo again with a JSON object"), log[1]
        assert log[3]["result"] == repr(f"ECHO:again-{self.marker.lower()}"), log[3]


@dataclass(frozen=True)
class BlockingToolFlow:
    """The model calls the sync tool e2e_block natively for far longer than the job's
    step_code_budget (the model picks the argument): the call is stopped at the budget, as
    job code calling it would be, and the job ends with the budget's error."""

    marker: str
    provider: Provider
    seconds: float = 600.0

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Take your time."

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        block = {"name": "e2e_block", "arguments": {"seconds": self.seconds}}
        return [
            rule(f"{self.marker}-after", "exit('the tool returned')", tool_result="unblocked",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", None, contains=self.system_prompt, model=p.model,
                 headers=p.headers, tool_calls=[block]),
        ]

    def agent(self) -> statek.Agent:
        return statek.Agent(self.marker, self.system_prompt, tools=[tools.e2e_block],
                            metadata=self.provider.metadata)

    def check(self, job: Any) -> None:
        assert str(job.status) == "DONE" and job.exit_status is None, job.chat_log
        assert job.error is not None and job.error.startswith(
            "budget: the tool e2e_block the model called ran over its step_code_budget"), job.error
        log = job.chat_log
        assert [e["kind"] for e in log] == ["turn", "tool"], log
        assert log[1]["name"] == "e2e_block" and "stopped" in log[1]["result"], log[1]


@dataclass(frozen=True)
class NoteFlow:
    """Turn 1 prints; turn 2 tells the application (through the tool `note`) and exits with
    the job's word."""

    marker: str
    provider: Provider
    note: Any = tools.e2e_note

    @property
    def system_prompt(self) -> str:
        return f"You are agent {self.marker}. Report back."

    FIRST_CODE = "print('note', 'ready', word)"

    @property
    def last_code(self) -> str:
        return f"noted = {self.note.__name__}(word)\nexit(noted)"

    def rules(self) -> list[dict[str, Any]]:
        p = self.provider
        return [
            rule(f"{self.marker}-finish", self.last_code, contains="note ready",
                 model=p.model, headers=p.headers),
            rule(f"{self.marker}-start", self.FIRST_CODE, contains=self.system_prompt,
                 model=p.model, headers=p.headers),
        ]

    def agent(self) -> statek.Agent:
        return statek.Agent(self.marker, self.system_prompt, tools=[self.note],
                            metadata=self.provider.metadata)

    def check(self, job: Any, word: str) -> None:
        assert_done(job, word)
        assert job.console == [f"note ready {word}\n"], job.console
        assert [e["kind"] for e in job.chat_log] == ["turn", "turn"]

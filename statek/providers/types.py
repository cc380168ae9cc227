"""Provider-neutral request and reply values, so agents never see an API's wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from statek.providers.ratelimit import RateLimitInfo

__all__ = [
    "ChatMessage",
    "ChatReply",
    "ChatRequest",
    "Provider",
    "Role",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call; `parameters` is the JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for; `id` ties the later tool result back to it.
    `problem` says why its arguments could not be read (not JSON, not an object): such a
    call is answered with that error rather than run, so the model can call again, where
    failing the whole reply would ask the model the same question again."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation (the system prompt travels on the request instead)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything a provider needs for one completion."""

    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them (estimated by offline providers)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output, the figure token budgets are checked against."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """Sum usages, so a job can keep one running total."""
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What the model answered; `finish_reason` and `raw_model` are the provider's own strings."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    raw_model: str | None = None
    #: what the reply's rate-limit headers said (HTTP providers), for admission control
    rate_limits: RateLimitInfo | None = None


@runtime_checkable
class Provider(Protocol):
    """Anything that can answer a ChatRequest.

    `complete` raises `statek.errors.ProviderError` only (never transport or JSON errors),
    after the provider's own retries, with `status` and `retryable` set.
    """

    name: str

    async def complete(self, request: ChatRequest) -> ChatReply: ...

    async def aclose(self) -> None: ...

"""An offline, deterministic provider: replies come from a script, so tests, demos and
scheduler benchmarks run without a network and cost next to nothing per call."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from statek.errors import ConfigurationError, ProviderError
from statek.providers.types import ChatReply, ChatRequest, Usage

__all__ = ["ReplyFunction", "ScriptedProvider", "estimate_usage"]

ReplyItem = str | ChatReply
ReplyFunction = Callable[[ChatRequest], ReplyItem | Awaitable[ReplyItem]]
UsageFunction = Callable[[ChatRequest, str], Usage]
_CACHE_LIMIT = 1024  # distinct (text, input size, model) replies kept per provider


def _input_chars(request: ChatRequest) -> int:
    chars = len(request.system)
    for message in request.messages:
        chars += len(message.content)
    return chars


def _tokens(chars: int) -> int:
    return (chars + 3) // 4


def estimate_usage(request: ChatRequest, content: str) -> Usage:
    """Roughly four characters per token, rounded up: deterministic and good enough for budgets."""
    return Usage(_tokens(_input_chars(request)), _tokens(len(content)))


class ScriptedProvider:
    """Answers from `replies`: a sequence (used in order, cycling unless `cycle=False`, then
    `ProviderError("script exhausted")`) or a function of the request, sync or async.

    `latency` seconds are awaited per call only when > 0, so the default path never touches
    the event loop. Usage is `usage(request, content)` if given, else `estimate_usage`; a
    ChatReply that carries its own usage keeps it. `calls` counts every call; `requests`
    keeps them only with `record=True`.
    """

    __slots__ = (
        "_cycle",
        "_function",
        "_index",
        "_record",
        "_replies",
        "_script",
        "_usage",
        "calls",
        "default_model",
        "latency",
        "name",
        "requests",
    )

    def __init__(
        self,
        replies: Sequence[str | ChatReply] | ReplyFunction = ("exit('ok')",),
        latency: float = 0.0,
        *,
        name: str = "scripted",
        cycle: bool = True,
        usage: UsageFunction | None = None,
        record: bool = False,
        default_model: str = "scripted",
    ) -> None:
        if latency < 0:
            raise ConfigurationError(f"latency must be >= 0, got {latency}")
        self._function: ReplyFunction | None = None
        self._script: tuple[ReplyItem, ...] = ()
        if isinstance(replies, str | ChatReply):  # one reply, not a sequence of characters
            self._script = (replies,)
        elif callable(replies):
            self._function = replies
        else:
            self._script = tuple(replies)
            if cycle and not self._script:
                raise ConfigurationError("a cycling script needs at least one reply")
        self.name = name
        self.default_model = default_model
        self.latency = latency
        self._cycle = cycle
        self._usage: UsageFunction = usage or estimate_usage
        self._record = record
        self._index = 0
        self._replies: dict[tuple[str, int, str], ChatReply] = {}
        self.calls = 0
        self.requests: list[ChatRequest] = []

    def reset(self) -> None:
        """Start the script over and forget counted and recorded calls."""
        self._index = 0
        self.calls = 0
        self.requests.clear()

    async def complete(self, request: ChatRequest) -> ChatReply:
        """The next scripted reply for `request`."""
        self.calls += 1
        if self._record:
            self.requests.append(request)
        function = self._function
        if function is None:
            index = self._index
            if index >= len(self._script):
                if not self._cycle:
                    raise ProviderError("script exhausted")
                index = 0
            item = self._script[index]
            self._index = index + 1
            if self.latency > 0:
                await asyncio.sleep(self.latency)
        else:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            item = await self._call(function, request)
        if isinstance(item, str):
            return self._text_reply(request, item)
        if item.usage is None:
            return replace(item, usage=self._usage(request, item.content))
        return item

    def _text_reply(self, request: ChatRequest, text: str) -> ChatReply:
        model = request.model or self.default_model
        if self._usage is not estimate_usage:
            return ChatReply(text, (), self._usage(request, text), "stop", model)
        # Replies are immutable and the estimate depends only on text lengths, so equal inputs
        # can share one ChatReply; this halves the cost of a call (frozen dataclasses are slow
        # to build).
        chars = _input_chars(request)
        key = (text, chars, model)
        reply = self._replies.get(key)
        if reply is None:
            if len(self._replies) >= _CACHE_LIMIT:
                self._replies.clear()
            usage = Usage(_tokens(chars), _tokens(len(text)))
            reply = self._replies[key] = ChatReply(text, (), usage, "stop", model)
        return reply

    async def _call(self, function: ReplyFunction, request: ChatRequest) -> ReplyItem:
        try:
            result = function(request)
            item = await result if inspect.isawaitable(result) else result
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"{self.name}: reply function failed: {exc!r}") from exc
        if not isinstance(item, str | ChatReply):
            raise ProviderError(
                f"{self.name}: reply function returned {type(item).__name__}, "
                "expected str or ChatReply"
            )
        return item

    async def aclose(self) -> None:
        """Nothing to release; present to satisfy the Provider protocol."""

"""Anthropic Messages API: system prompt top-level, tools as tool_use / tool_result blocks."""

from __future__ import annotations

from typing import Any

from statek.errors import ProviderError
from statek.providers.http_base import HTTPProvider, MalformedReply, token_count
from statek.providers.types import ChatMessage, ChatReply, ChatRequest, ToolCall, Usage

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; used when the request has none


class AnthropicProvider(HTTPProvider):
    """POST {base_url}/v1/messages with x-api-key and anthropic-version headers (api.anthropic.com
    without a key fails on first use, naming STATEK_ANTHROPIC_API_KEY)."""

    DEFAULT_NAME = "anthropic"
    DEFAULT_MODEL = "claude-sonnet-4-5"
    DEFAULT_BASE_URL = "https://api.anthropic.com"
    ENDPOINT = "/v1/messages"
    HOSTED_HOST = "api.anthropic.com"
    API_KEY_SETTING = "STATEK_ANTHROPIC_API_KEY"
    BASE_URL_SETTING = "STATEK_ANTHROPIC_BASE_URL"
    BASE_URL_HINT = "an Anthropic base URL has no /v1 (the path /v1/messages is added)"
    AUTH_HEADERS = ("x-api-key", "authorization")

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        max_tokens = request.max_tokens
        body: dict[str, Any] = {
            "model": request.model or self.default_model,
            "max_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            "messages": self._messages(request.messages),
        }
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in request.tools
            ]
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def _messages(self, messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
        """Wire messages; consecutive same-role turns are merged, as the API wants roles to
        alternate and all results of one tool round in a single user message."""
        merged: list[tuple[str, list[dict[str, Any]]]] = []
        for message in messages:
            role, blocks = self._blocks(message)
            if merged and merged[-1][0] == role:
                merged[-1][1].extend(blocks)
            else:
                merged.append((role, blocks))
        out: list[dict[str, Any]] = []
        for role, blocks in merged:
            if len(blocks) == 1 and blocks[0]["type"] == "text":
                out.append({"role": role, "content": blocks[0]["text"]})
            else:
                out.append({"role": role, "content": blocks})
        return out

    def _blocks(self, message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
        if message.role == "tool":
            if message.tool_call_id is None:
                raise ProviderError(f"{self.name}: tool message without tool_call_id")
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            return "user", [block]
        blocks: list[dict[str, Any]] = []
        if message.content or not message.tool_calls:
            blocks.append({"type": "text", "text": message.content})
        blocks.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
            for c in message.tool_calls
        )
        return message.role, blocks

    def parse_reply(self, data: Any) -> ChatReply:
        if not isinstance(data, dict):
            raise MalformedReply(f"expected a JSON object, got {type(data).__name__}")
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise MalformedReply("missing 'content'")
        texts: list[str] = []
        calls: list[ToolCall] = []
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                raise MalformedReply(f"content[{i}] is not an object")
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise MalformedReply(f"content[{i}] text block has no 'text'")
                texts.append(text)
            elif kind == "tool_use":
                calls.append(_tool_call(block, i))
            # other block types (thinking, ...) carry nothing a ChatReply holds
        stop = data.get("stop_reason")
        model = data.get("model")
        return ChatReply(
            content="".join(texts),
            tool_calls=tuple(calls),
            usage=_usage(data.get("usage")),
            finish_reason=stop if isinstance(stop, str) else None,
            raw_model=model if isinstance(model, str) else None,
        )


def _tool_call(block: dict[str, Any], index: int) -> ToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str) or not name:
        raise MalformedReply(f"content[{index}] tool_use block lacks 'id' or 'name'")
    if not isinstance(arguments, dict):  # the model's mistake: it is told (ToolCall.problem)
        return ToolCall(id=call_id, name=name, arguments={},
                        problem=f"a JSON {type(arguments).__name__}, not an object")
    return ToolCall(id=call_id, name=name, arguments=arguments)


def _usage(raw: Any) -> Usage | None:
    """Usage of a reply (None when the server sent none); counts are validated, since budgets
    (`max_tokens`) rest on them."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedReply(f"malformed usage: expected an object, got {type(raw).__name__}")
    # Prompt-cache reads and writes are input the model processed too, so they count.
    inp = sum(
        token_count(raw, key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(input_tokens=inp, output_tokens=token_count(raw, "output_tokens"))

"""Chat Completions API, as spoken by OpenAI and most self-hosted servers (vLLM, Ollama,
llama.cpp, OpenRouter): one class, pointed at any of them by `base_url`."""

from __future__ import annotations

from typing import Any

from statek import _json
from statek.errors import ProviderError
from statek.providers.http_base import HTTPProvider, MalformedReply, token_count
from statek.providers.types import ChatMessage, ChatReply, ChatRequest, ToolCall, Usage

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(HTTPProvider):
    """POST {base_url}/chat/completions with a Bearer key (omitted when None, for local servers;
    api.openai.com itself without a key fails on first use, naming STATEK_OPENAI_API_KEY)."""

    DEFAULT_NAME = "openai"
    DEFAULT_MODEL = "gpt-4o-mini"
    DEFAULT_BASE_URL = None
    ENDPOINT = "/chat/completions"
    HOSTED_HOST = "api.openai.com"
    API_KEY_SETTING = "STATEK_OPENAI_API_KEY"
    BASE_URL_SETTING = "STATEK_OPENAI_BASE_URL"
    BASE_URL_HINT = "an OpenAI-compatible base URL usually ends in /v1"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(self._message(m) for m in request.messages)
        body: dict[str, Any] = {"model": request.model or self.default_model, "messages": messages}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def _message(self, message: ChatMessage) -> dict[str, Any]:
        if message.role == "tool":
            if message.tool_call_id is None:
                raise ProviderError(f"{self.name}: tool message without tool_call_id")
            return {
                "role": "tool",
                "tool_call_id": message.tool_call_id,
                "content": message.content,
            }
        if message.role == "assistant" and message.tool_calls:
            return {
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": _json.dumps(dict(call.arguments)).decode("utf-8"),
                        },
                    }
                    for call in message.tool_calls
                ],
            }
        return {"role": message.role, "content": message.content}

    def parse_reply(self, data: Any) -> ChatReply:
        if not isinstance(data, dict):
            raise MalformedReply(f"expected a JSON object, got {type(data).__name__}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedReply("missing 'choices'")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise MalformedReply("missing 'choices[0].message'")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise MalformedReply("'message.content' is not a string")
        refusal = message.get("refusal")
        if not content and isinstance(refusal, str) and refusal.strip():
            content = f"(the model refused: {refusal})"  # not an empty reply: it said why
        raw_calls = message.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise MalformedReply("'message.tool_calls' is not a list")
        finish = choice.get("finish_reason")
        model = data.get("model")
        return ChatReply(
            content=content or "",
            tool_calls=tuple(_tool_call(raw, i) for i, raw in enumerate(raw_calls)),
            usage=_usage(data.get("usage")),
            finish_reason=finish if isinstance(finish, str) else None,
            raw_model=model if isinstance(model, str) else None,
        )


def _tool_call(raw: Any, index: int) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise MalformedReply(f"tool_calls[{index}] has no 'function'")
    function = raw["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedReply(f"tool_calls[{index}] has no function name")
    arguments = function.get("arguments")
    problem = None
    if isinstance(arguments, str):
        if not arguments.strip():
            arguments = {}
        else:
            try:
                arguments = _json.loads(arguments)
            except ValueError as exc:  # the model's mistake, not the server's: it is told
                problem = f"not valid JSON ({exc})"
    elif arguments is None:
        arguments = {}
    if problem is None and not isinstance(arguments, dict):
        problem = f"a JSON {type(arguments).__name__}, not an object"
    call_id = raw.get("id")
    # Some local servers omit ids; a stable stand-in still lets the tool result refer back.
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=name,
        arguments=arguments if problem is None else {},
        problem=problem,
    )


def _usage(raw: Any) -> Usage | None:
    """Usage of a reply (None when the server sent none); counts are validated, since budgets
    (`max_tokens`) rest on them."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedReply(f"malformed usage: expected an object, got {type(raw).__name__}")
    return Usage(token_count(raw, "prompt_tokens"), token_count(raw, "completion_tokens"))

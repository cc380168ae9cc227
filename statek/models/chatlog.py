"""The chat log's stored form: one tuple per entry (a dbzero tuple costs about half a dict).

Kinds: a model turn (what the model was shown and what it replied), a tool result, and an
error. `decode` turns an entry into the dict users read from `job.chat_log`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

TURN, TOOL, ERROR = "turn", "tool", "error"

_FIELDS: dict[str, tuple[str, ...]] = {
    TURN: ("kind", "at", "user", "console_from", "console_to", "reply", "tool_calls",
           "input_tokens", "output_tokens"),
    TOOL: ("kind", "at", "call_id", "name", "result"),
    ERROR: ("kind", "at", "message"),
}


def turn(user: str, console_from: int, console_to: int, reply: str,
         tool_calls: Sequence[tuple[str, str, str]], input_tokens: int,
         output_tokens: int) -> tuple[Any, ...]:
    """tool_calls: (id, name, JSON arguments) triples."""
    return (TURN, time.time(), user, console_from, console_to, reply,
            tuple(tool_calls), input_tokens, output_tokens)


def tool_result(call_id: str, name: str, result: str) -> tuple[Any, ...]:
    return (TOOL, time.time(), call_id, name, result)


def error(message: str) -> tuple[Any, ...]:
    return (ERROR, time.time(), message)


def decode(entry: Any) -> dict[str, Any]:
    if isinstance(entry, dict) or type(entry).__name__ == "Dict":
        return dict(entry)
    values = list(entry)
    fields = _FIELDS.get(values[0], ())
    out = dict(zip(fields, values, strict=False))
    if "tool_calls" in out:
        out["tool_calls"] = [tuple(c) for c in out["tool_calls"]]
    return out

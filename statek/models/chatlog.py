"""The chat log's stored form: one JSON line per entry.

dbzero charges by stored object, not by byte: a 9-field tuple entry costs about 27 µs to write
and a new list another 15, while a short string costs about 5. So each entry is encoded as one
JSON array line, and a job's log is kept inline in one string while it is short (most jobs end
within a few turns) and moved to a list of lines once it would pass `INLINE_CHARS`, so that
appending never rewrites more than that much.

Kinds: a model turn (what the model was shown and what it replied), a tool result, and an
error. `decode` turns an entry into the dict users read from `job.chat_log`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from statek import _json

TURN, TOOL, ERROR = "turn", "tool", "error"

#: Longest log (in characters) kept inline in one string.
INLINE_CHARS = 2048

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


# ---------------------------------------------------------------------------- stored form
def encode(entry: Sequence[Any]) -> str:
    """One newline-terminated JSON line (JSON escapes every newline inside strings)."""
    try:
        return _json.dumps(entry).decode() + "\n"
    except (TypeError, ValueError):  # a lone surrogate (job output may hold one): orjson
        # refuses it, stdlib json cannot encode it to UTF-8; escaped, it is plain ASCII
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n"


def _load(line: str) -> list[Any]:
    try:
        value = _json.loads(line)
    except ValueError:  # written by the escaping fallback above
        value = json.loads(line)
    return value if isinstance(value, list) else []


def appended(stored: Any, line: str) -> tuple[Any, int]:
    """(value to store instead of `stored`, or None when `stored` was appended to in place;
    the log's new length in entries)."""
    if stored is None:
        return line, 1
    if type(stored) is str:
        count = stored.count("\n") + 1
        if len(stored) + len(line) <= INLINE_CHARS:
            return stored + line, count
        return [*_lines(stored), line], count
    stored.append(line)
    return None, len(stored)


def length(stored: Any) -> int:
    if stored is None:
        return 0
    if type(stored) is str:
        return stored.count("\n")
    return len(stored)


def count_turns(stored: Any) -> int:
    """Model turns in a stored log (each line starts with its JSON array; a turn's with
    `["turn",`, which cannot start a line inside another entry)."""
    if stored is None:
        return 0
    if type(stored) is str:
        return ("\n" + stored).count('\n["turn",')
    return sum(1 for i in range(len(stored)) if _is_turn(stored[i]))


def _is_turn(item: Any) -> bool:
    return item.startswith('["turn",') if type(item) is str else bool(item[0] == TURN)


def entries(stored: Any, start: int = 0) -> list[list[Any]]:
    """Entries `start...` of a stored log, each as the list of its fields."""
    if stored is None:
        return []
    if type(stored) is str:
        return [_load(line) for line in _lines(stored)[start:]]
    return [_item(stored[i]) for i in range(start, len(stored))]


def _lines(inline: str) -> list[str]:
    """The lines of an inline log, each with its "\\n" (str.splitlines would also split at
    the other line breaks JSON leaves unescaped, such as U+2028 and U+0085)."""
    return [line + "\n" for line in inline[:-1].split("\n")]


def _item(item: Any) -> list[Any]:
    return _load(item) if type(item) is str else list(item)  # a tuple: logs of statek <= 0.1


def decode(entry: Sequence[Any]) -> dict[str, Any]:
    """The dict form of one entry's fields."""
    fields = _FIELDS.get(entry[0], ()) if entry else ()
    out = dict(zip(fields, entry, strict=False))
    if "tool_calls" in out:
        out["tool_calls"] = [tuple(c) for c in out["tool_calls"]]
    return out

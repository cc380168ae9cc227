"""How many tokens a request will use, guessed before it is sent (cheaply: no tokenizer).

The guess is reserved against the tokens-per-window limit and corrected when the reply's
usage arrives, so it needs to be high rather than exact: about 4 characters per token for
the prompt, plus the output the request allows (`max_tokens`, else `DEFAULT_OUTPUT_TOKENS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from statek.errors import ConfigurationError
from statek.providers.types import ChatRequest

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "Estimator",
    "estimate_tokens",
    "load_estimator",
]

Estimator = Callable[[ChatRequest], int]
CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_TOKENS = 512  # reserved for a request that sets no max_tokens
MESSAGE_OVERHEAD = 4  # role and separators per message, in tokens
TOOL_OVERHEAD = 32  # a tool's JSON schema beyond its name and description, in tokens


def estimate_tokens(request: ChatRequest) -> int:
    """Input tokens (characters / 4, plus per-message and per-tool overheads) plus the
    output tokens the request allows."""
    chars = len(request.system)
    for message in request.messages:
        chars += len(message.content)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description)
    prompt = (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    prompt += MESSAGE_OVERHEAD * (len(request.messages) + 1) + TOOL_OVERHEAD * len(request.tools)
    output = request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_TOKENS
    return prompt + output


def load_estimator(path: str | None) -> Estimator:
    """The estimator named by "module:function" (settings.rate_limit_estimator), or the
    default; a path that does not name a callable is a ConfigurationError."""
    if not path:
        return estimate_tokens
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"rate_limit_estimator must be 'module:function', got {path!r}")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"rate_limit_estimator {path!r} cannot be loaded: {exc}") from exc
    if not callable(found):
        raise ConfigurationError(f"rate_limit_estimator {path!r} is not callable")
    return found  # type: ignore[no-any-return]

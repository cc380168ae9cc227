"""Model providers: one `Provider` protocol, HTTP clients for OpenAI-compatible servers and
Anthropic, an offline scripted provider, and the registry that maps names to them."""

from statek.providers.anthropic import AnthropicProvider
from statek.providers.openai_compat import OpenAICompatibleProvider
from statek.providers.registry import (
    BUILTIN_PROVIDERS,
    aclose_all,
    add_provider,
    configure_builtins,
    get_provider,
    registered_providers,
    remove_provider,
    reset_registry,
    resolve_provider,
    split_model,
    use_offline,
)
from statek.providers.retry import RetryPolicy
from statek.providers.scripted import ScriptedProvider, estimate_usage
from statek.providers.types import (
    ChatMessage,
    ChatReply,
    ChatRequest,
    Provider,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "BUILTIN_PROVIDERS",
    "AnthropicProvider",
    "ChatMessage",
    "ChatReply",
    "ChatRequest",
    "OpenAICompatibleProvider",
    "Provider",
    "RetryPolicy",
    "ScriptedProvider",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "aclose_all",
    "add_provider",
    "configure_builtins",
    "estimate_usage",
    "get_provider",
    "registered_providers",
    "remove_provider",
    "reset_registry",
    "resolve_provider",
    "split_model",
    "use_offline",
]

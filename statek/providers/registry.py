"""Process-wide name -> provider table, so jobs can pick a model by "provider/model" strings.

The built-in names ("openai", "anthropic", "scripted") need no registration: each is created
on first `get_provider` from the settings given to `configure_builtins` (or defaults), so
importing statek never opens a connection or reads a key it will not use.

Nothing falls back to the offline `scripted` provider: a job gets it only by naming it (MODEL
"scripted/...", PROVIDER "scripted", a runner or settings default of "scripted"). A job that
names no known provider, with no default set, fails with `ProviderNotConfiguredError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from statek.errors import ProviderNotConfiguredError, ProviderNotFoundError
from statek.providers.anthropic import AnthropicProvider
from statek.providers.http_base import DEFAULT_MAX_RESPONSE_BYTES
from statek.providers.openai_compat import OpenAICompatibleProvider
from statek.providers.scripted import ScriptedProvider
from statek.providers.types import Provider

__all__ = [
    "BUILTIN_PROVIDERS",
    "aclose_all",
    "add_provider",
    "configure_builtins",
    "get_provider",
    "registered_providers",
    "remove_provider",
    "reset_registry",
    "resolve_provider",
    "split_model",
    "use_offline",
]

OFFLINE = "scripted"  # the offline provider's name: used only when chosen

logger = logging.getLogger("statek.providers")

_providers: dict[str, Provider] = {}
_lazy: set[str] = set()  # names whose provider we built (and so must close)
_retired: list[Provider] = []  # built-ins replaced since their creation, still to close
_settings: Any = None
_generation = [0]  # bumped by every change to what a name resolves to


def _secret(value: Any) -> str | None:
    """Plain text of a key given as str or pydantic SecretStr; None when unset or empty."""
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)
    text = reveal() if callable(reveal) else value
    return str(text) or None


def _setting(settings: Any, name: str, default: Any) -> Any:
    """`settings.name`, with `default` when the object lacks it or holds None."""
    value = getattr(settings, name, None)
    return default if value is None else value


def _http_options(settings: Any) -> dict[str, Any]:
    return {
        "timeout": float(_setting(settings, "provider_timeout", 60.0)),
        "max_retries": int(_setting(settings, "provider_max_retries", 4)),
        "backoff_base": float(_setting(settings, "provider_backoff_base", 0.5)),
        "backoff_max": float(_setting(settings, "provider_backoff_max", 30.0)),
        "max_connections": int(_setting(settings, "provider_max_connections", 100)),
        "max_response_bytes": int(
            _setting(settings, "provider_max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        ),
        "http_client": str(_setting(settings, "provider_http_client", "auto")),
    }


def _make_openai(settings: Any) -> Provider:
    return OpenAICompatibleProvider(
        _setting(settings, "openai_base_url", None) or "https://api.openai.com/v1",
        _secret(_setting(settings, "openai_api_key", None)),
        name="openai",
        **_http_options(settings),
    )


def _make_anthropic(settings: Any) -> Provider:
    return AnthropicProvider(
        _setting(settings, "anthropic_base_url", None) or "https://api.anthropic.com",
        _secret(_setting(settings, "anthropic_api_key", None)),
        name="anthropic",
        **_http_options(settings),
    )


def _make_scripted(settings: Any) -> Provider:
    return ScriptedProvider()


def use_offline() -> str:
    """Make every built-in name answer offline (a fresh `ScriptedProvider` each, replying
    "exit('ok')"), so no job of this process reaches the network; returns the offline
    provider's name, to pass as the runner's default (`statek worker --offline`)."""
    for name in BUILTIN_PROVIDERS:
        add_provider(name, ScriptedProvider(name=name))
    return OFFLINE


BUILTIN_PROVIDERS: Mapping[str, Callable[[Any], Provider]] = {
    "anthropic": _make_anthropic,
    "openai": _make_openai,
    "scripted": _make_scripted,
}


def _retire(name: str) -> None:
    """Stop tracking a provider we built; keep it for `aclose_all` to close."""
    if name in _lazy:
        _lazy.discard(name)
        old = _providers.pop(name, None)
        if old is not None:
            _retired.append(old)


def configure_builtins(settings: Any) -> None:
    """Use `settings` (StatekSettings or any object with the same attribute names, or None for
    defaults) for built-ins; ones already created are rebuilt on next use."""
    global _settings
    _settings = settings
    _generation[0] += 1
    for name in list(_lazy):
        _retire(name)


def add_provider(name: str, provider: Provider) -> None:
    """Register `provider` under `name`, replacing any provider of that name (the caller keeps
    ownership of a replaced provider it registered itself)."""
    if not name or "/" in name:
        raise ValueError(f"provider name must be non-empty and contain no '/': {name!r}")
    _retire(name)
    _providers[name] = provider
    _generation[0] += 1


def remove_provider(name: str) -> None:
    """Forget `name` (no error if unknown); a built-in name comes back fresh on next use."""
    _retire(name)
    _providers.pop(name, None)
    _generation[0] += 1


def registered_providers() -> list[str]:
    """Sorted names `get_provider` accepts: registered ones plus the built-ins."""
    return sorted(_providers.keys() | BUILTIN_PROVIDERS.keys())


def generation() -> int:
    """Changes whenever a provider is added, removed or reconfigured (for callers that
    cache what a name resolves to)."""
    return _generation[0]


def get_provider(name: str) -> Provider:
    """The provider called `name`, creating a built-in on first use."""
    provider = _providers.get(name)
    if provider is not None:
        return provider
    factory = BUILTIN_PROVIDERS.get(name)
    if factory is None:
        known = ", ".join(registered_providers())
        raise ProviderNotFoundError(f"no provider named {name!r}; known providers: {known}")
    provider = _providers[name] = factory(_settings)
    _lazy.add(name)
    return provider


def _known(name: str) -> bool:
    return name in _providers or name in BUILTIN_PROVIDERS


def split_model(spec: str | None) -> tuple[str | None, str]:
    """("openai", "gpt-4o") from "openai/gpt-4o"; (None, spec) when the part before the first
    "/" is not a provider name, since model ids may contain "/" themselves."""
    if not spec:
        return None, ""
    spec = spec.strip()
    head, sep, rest = spec.partition("/")
    if sep and _known(head):
        return head, rest
    return None, spec


def resolve_provider(
    metadata: Mapping[str, Any] | None, default: str | None, settings_default: str | None
) -> tuple[Provider, str]:
    """(provider, model) for a job. Provider: metadata["PROVIDER"], else the provider part of
    metadata["MODEL"], else `default` (the runner's), else `settings_default`; none of them:
    `ProviderNotConfiguredError` naming MODEL and what to set. Model: the model part of MODEL,
    else the chosen provider's `default_model` ("" if it has none)."""
    metadata = metadata or {}
    model_spec = metadata.get("MODEL")
    from_model, model = split_model(model_spec if isinstance(model_spec, str) else None)
    explicit = metadata.get("PROVIDER")
    name = (explicit if isinstance(explicit, str) and explicit else None) or (
        from_model or default or settings_default
    )
    if not name:
        raise ProviderNotConfiguredError(_no_provider_message(model_spec))
    provider = get_provider(name)
    if not model:
        model = str(getattr(provider, "default_model", "") or "")
    return provider, model


def _no_provider_message(model_spec: Any) -> str:
    """Why no provider was chosen, and every way to choose one."""
    known = ", ".join(registered_providers())
    if isinstance(model_spec, str) and model_spec.strip():
        what = f"MODEL {model_spec!r} names no known provider (known: {known})"
    else:
        what = f"the job sets neither MODEL nor PROVIDER (known providers: {known})"
    return (
        f"no provider for this job: {what}, and no default provider is set. Write MODEL as "
        "'provider/model' (e.g. 'openai/gpt-4o-mini'), or set STATEK_DEFAULT_PROVIDER (e.g. "
        "'openai' with STATEK_OPENAI_BASE_URL and STATEK_OPENAI_API_KEY, or 'anthropic' with "
        "STATEK_ANTHROPIC_API_KEY), or pass provider= to the runner. The offline provider "
        "answers only when chosen: STATEK_DEFAULT_PROVIDER=scripted or `statek worker --offline`"
    )


async def aclose_all() -> None:
    """Close every provider's connections; built-ins we created are dropped and rebuilt on
    next use, registered ones stay registered (their clients reopen lazily)."""
    providers = {id(p): p for p in [*_retired, *_providers.values()]}.values()
    for name in list(_lazy):
        _retire(name)
    _retired.clear()
    results = await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
    for provider, result in zip(providers, results, strict=True):
        if isinstance(result, Exception):  # shutting down: report, keep closing the rest
            logger.warning("closing provider %r failed: %r", provider.name, result)


def reset_registry() -> None:
    """Forget every registration and the settings (tests); call `aclose_all` first to close."""
    global _settings
    _providers.clear()
    _lazy.clear()
    _retired.clear()
    _settings = None
    _generation[0] += 1

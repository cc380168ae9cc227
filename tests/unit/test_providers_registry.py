"""Provider registry: registration, lazy built-ins from settings, model-spec parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from statek.errors import ConfigurationError, ProviderNotConfiguredError, ProviderNotFoundError
from statek.providers import (
    AnthropicProvider,
    OpenAICompatibleProvider,
    ScriptedProvider,
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


@pytest.fixture(autouse=True)
async def clean_registry() -> AsyncIterator[None]:
    reset_registry()
    yield
    await aclose_all()
    reset_registry()


def test_add_get_replace_remove() -> None:
    first, second = ScriptedProvider(["1"]), ScriptedProvider(["2"])
    add_provider("mine", first)
    assert get_provider("mine") is first
    add_provider("mine", second)
    assert get_provider("mine") is second
    assert "mine" in registered_providers()
    remove_provider("mine")
    assert "mine" not in registered_providers()
    remove_provider("mine")  # unknown names are fine
    with pytest.raises(ProviderNotFoundError):
        get_provider("mine")


def test_not_found_names_the_known_providers() -> None:
    add_provider("local", ScriptedProvider())
    with pytest.raises(ProviderNotFoundError) as info:
        get_provider("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "anthropic, local, openai, scripted" in message
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_add_rejects_unusable_names(bad: str) -> None:
    with pytest.raises(ValueError, match="provider name"):
        add_provider(bad, ScriptedProvider())


def test_builtins_are_listed_and_created_lazily() -> None:
    assert registered_providers() == ["anthropic", "openai", "scripted"]
    scripted = get_provider("scripted")
    assert isinstance(scripted, ScriptedProvider)
    assert get_provider("scripted") is scripted  # created once, then reused


async def test_default_scripted_builtin_answers_exit_ok() -> None:
    from statek.providers import ChatMessage, ChatRequest

    reply = await get_provider("scripted").complete(
        ChatRequest("m", "", (ChatMessage("user", "go"),))
    )
    assert reply.content == "exit('ok')"


def test_builtins_without_settings_use_defaults() -> None:
    openai = get_provider("openai")
    assert isinstance(openai, OpenAICompatibleProvider)
    assert openai.url == "https://api.openai.com/v1/chat/completions"
    assert openai.timeout == 60.0
    assert openai.retry.max_retries == 4
    anthropic = get_provider("anthropic")
    assert isinstance(anthropic, AnthropicProvider)
    assert anthropic.url == "https://api.anthropic.com/v1/messages"


def settings(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "openai_base_url": "http://llm.local:8000/v1",
        "openai_api_key": SecretStr("sk-open"),
        "anthropic_base_url": "http://claude.local",
        "anthropic_api_key": "sk-ant",
        "provider_timeout": 7.5,
        "provider_max_retries": 2,
        "provider_backoff_base": 0.1,
        "provider_backoff_max": 3.0,
        "provider_max_response_bytes": 4096,
        "provider_max_connections": 7,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_builtins_follow_settings() -> None:
    configure_builtins(settings())
    openai = get_provider("openai")
    assert isinstance(openai, OpenAICompatibleProvider)
    assert openai.url == "http://llm.local:8000/v1/chat/completions"
    assert openai._headers["authorization"] == "Bearer sk-open"  # SecretStr unwrapped
    assert openai.timeout == 7.5
    assert (openai.retry.max_retries, openai.retry.backoff_base, openai.retry.backoff_max) == (
        2,
        0.1,
        3.0,
    )
    anthropic = get_provider("anthropic")
    assert isinstance(anthropic, AnthropicProvider)
    assert anthropic.url == "http://claude.local/v1/messages"
    assert anthropic._headers["x-api-key"] == "sk-ant"
    assert openai.max_response_bytes == anthropic.max_response_bytes == 4096
    assert openai.max_connections == anthropic.max_connections == 7


def test_reconfiguring_rebuilds_builtins_but_keeps_added_ones() -> None:
    configure_builtins(settings())
    old = get_provider("openai")
    mine = ScriptedProvider()
    add_provider("mine", mine)
    configure_builtins(settings(openai_base_url="http://other/v1", openai_api_key=None))
    new = get_provider("openai")
    assert new is not old
    assert isinstance(new, OpenAICompatibleProvider)
    assert new.url == "http://other/v1/chat/completions"
    assert "authorization" not in new._headers
    assert get_provider("mine") is mine


def test_real_settings_object_is_accepted() -> None:
    from statek.settings import StatekSettings

    configure_builtins(StatekSettings.build(openai_api_key="sk-real", provider_timeout=3.0))
    openai = get_provider("openai")
    assert isinstance(openai, OpenAICompatibleProvider)
    assert openai._headers["authorization"] == "Bearer sk-real"
    assert openai.timeout == 3.0


def test_builtin_can_be_overridden_and_restored() -> None:
    fake = ScriptedProvider(name="openai")
    add_provider("openai", fake)
    assert get_provider("openai") is fake
    remove_provider("openai")
    assert isinstance(get_provider("openai"), OpenAICompatibleProvider)


async def test_aclose_all_keeps_added_providers() -> None:
    mine = ScriptedProvider()
    add_provider("mine", mine)
    built = get_provider("anthropic")
    await aclose_all()
    assert get_provider("mine") is mine
    assert get_provider("anthropic") is not built


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("anthropic/claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("gpt-4o", (None, "gpt-4o")),
        ("meta-llama/llama-3", (None, "meta-llama/llama-3")),
        ("openrouter/meta-llama/llama-3", ("openrouter", "meta-llama/llama-3")),
        ("unknown/meta-llama/llama-3", (None, "unknown/meta-llama/llama-3")),
        ("scripted/", ("scripted", "")),
        (" openai/gpt-4o ", ("openai", "gpt-4o")),
        ("", (None, "")),
        (None, (None, "")),
    ],
)
def test_split_model(spec: str | None, expected: tuple[str | None, str]) -> None:
    add_provider("openrouter", ScriptedProvider())
    assert split_model(spec) == expected


def test_split_model_only_knows_registered_heads() -> None:
    assert split_model("openrouter/x/y") == (None, "openrouter/x/y")


@pytest.mark.parametrize(
    ("metadata", "default", "expected"),
    [
        # PROVIDER wins over everything, MODEL still supplies the model part.
        ({"PROVIDER": "alpha", "MODEL": "beta/m1"}, "beta", ("alpha", "m1")),
        ({"PROVIDER": "alpha", "MODEL": "plain-model"}, None, ("alpha", "plain-model")),
        # Then the provider part of MODEL.
        ({"MODEL": "beta/m2"}, "alpha", ("beta", "m2")),
        ({"MODEL": "beta/org/model"}, None, ("beta", "org/model")),
        # Then the caller's default.
        ({"MODEL": "org/model"}, "alpha", ("alpha", "org/model")),
        ({}, "beta", ("beta", "beta-default")),
        # Then the settings default.
        (None, None, ("gamma", "gamma-default")),
        ({"PROVIDER": "", "MODEL": ""}, None, ("gamma", "gamma-default")),
        ({"PROVIDER": None, "MODEL": None}, "", ("gamma", "gamma-default")),
    ],
)
def test_resolve_provider_precedence(
    metadata: dict[str, Any] | None, default: str | None, expected: tuple[str, str]
) -> None:
    for name in ("alpha", "beta", "gamma"):
        add_provider(name, ScriptedProvider(name=name, default_model=f"{name}-default"))
    provider, model = resolve_provider(metadata, default, "gamma")
    assert (provider.name, model) == expected


def test_resolve_provider_with_builtin_defaults() -> None:
    provider, model = resolve_provider({"MODEL": "anthropic/claude-x"}, None, "scripted")
    assert isinstance(provider, AnthropicProvider)
    assert model == "claude-x"
    provider, model = resolve_provider({}, None, "openai")
    assert (provider.name, model) == ("openai", "gpt-4o-mini")
    provider, model = resolve_provider({}, None, "anthropic")
    assert model == "claude-sonnet-4-5"


def test_resolve_provider_unknown_name() -> None:
    with pytest.raises(ProviderNotFoundError, match="nope"):
        resolve_provider({"PROVIDER": "nope"}, None, "scripted")


def test_resolve_provider_without_default_model_attribute() -> None:
    class Bare:
        name = "bare"

        async def complete(self, request: Any) -> Any: ...

        async def aclose(self) -> None: ...

    add_provider("bare", Bare())
    provider, model = resolve_provider({"PROVIDER": "bare"}, None, "scripted")
    assert (provider.name, model) == ("bare", "")


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"MODEL": "gpt-4o-mini"}, "MODEL 'gpt-4o-mini'"),
        ({"MODEL": "vendor/model-x"}, "MODEL 'vendor/model-x'"),
        ({}, "neither MODEL nor PROVIDER"),
        (None, "neither MODEL nor PROVIDER"),
        ({"MODEL": "", "PROVIDER": ""}, "neither MODEL nor PROVIDER"),
    ],
)
def test_no_provider_and_no_default_is_a_configuration_error(
    metadata: dict[str, Any] | None, named: str
) -> None:
    """Nothing falls back to the offline provider: the error says what was asked and what
    to set."""
    with pytest.raises(ProviderNotConfiguredError) as info:
        resolve_provider(metadata, None, None)
    message = str(info.value)
    assert named in message
    for setting in ("STATEK_DEFAULT_PROVIDER", "STATEK_OPENAI_BASE_URL", "STATEK_OPENAI_API_KEY",
                    "provider/model", "--offline"):
        assert setting in message
    assert "anthropic, openai, scripted" in message  # the known providers
    # a configuration error (the step ends the job at once), still a not-found for old callers
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ProviderNotFoundError)


@pytest.mark.parametrize(
    ("metadata", "default", "settings_default"),
    [
        ({"MODEL": "scripted/any"}, None, None),
        ({"PROVIDER": "scripted"}, None, None),
        ({"MODEL": "gpt-4o-mini"}, "scripted", None),
        ({}, None, "scripted"),
    ],
)
def test_offline_provider_when_chosen(
    metadata: dict[str, Any], default: str | None, settings_default: str | None
) -> None:
    provider, _ = resolve_provider(metadata, default, settings_default)
    assert isinstance(provider, ScriptedProvider)


async def test_use_offline_answers_every_builtin_name_offline() -> None:
    from statek.providers import ChatMessage, ChatRequest

    assert use_offline() == "scripted"
    for name in ("openai", "anthropic", "scripted"):
        provider = get_provider(name)
        assert isinstance(provider, ScriptedProvider) and provider.name == name
        reply = await provider.complete(ChatRequest("m", "", (ChatMessage("user", "go"),)))
        assert reply.content == "exit('ok')"
    configure_builtins(settings())  # settings do not bring the network back
    assert isinstance(get_provider("openai"), ScriptedProvider)
    remove_provider("openai")
    assert isinstance(get_provider("openai"), OpenAICompatibleProvider)

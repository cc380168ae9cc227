"""statek: durable LLM agents as Python workspaces, persisted in dbzero.

Importing statek touches no storage; see `statek.store` for the start-up sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statek import _compiled_pipeline

# Before any pipeline module is imported: serves the opt-in mypyc build of the step pipeline
# when it was built from these very sources (docs/building.md); otherwise it does nothing.
_compiled_pipeline.install()

from statek._version import __version__
from statek.errors import (
    AgentNotFoundError,
    ConfigurationError,
    IllegalTransitionError,
    JobNotFoundError,
    JobPendingError,
    MissingAPIKeyError,
    NotInitializedError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderNotFoundError,
    SandboxViolation,
    StatekError,
    StoreDamagedError,
    StoreLockedError,
    UnstorableValueError,
)
from statek.models import (
    Agent,
    Future,
    Job,
    JobDef,
    JobStatus,
    StatekPushQueue,
    SupervisedAgent,
)
from statek.models.budget import BudgetExhausted
from statek.settings import StatekSettings, get_statek_settings
from statek.statek_client_api import StatekClientAPI
from statek.store import close, commit_all, init, open_default_store, open_prefix
from statek.tools import tool

if TYPE_CHECKING:  # the lazy names below, visible to type checkers and IDEs
    from statek._speedups import speedups_enabled
    from statek.providers import add_provider, get_provider
    from statek.remote import connect
    from statek.runner import start_statek, start_statek_async

# Names whose modules pull in the runner, providers or compiled code: imported on first use.
_LAZY = {
    "start_statek": "statek.runner",
    "start_statek_async": "statek.runner",
    "add_provider": "statek.providers",
    "get_provider": "statek.providers",
    "speedups_enabled": "statek._speedups",
    "connect": "statek.remote",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'statek' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Agent", "AgentNotFoundError", "BudgetExhausted", "ConfigurationError", "Future",
    "IllegalTransitionError", "Job",
    "JobDef", "JobNotFoundError", "JobPendingError", "JobStatus", "MissingAPIKeyError",
    "NotInitializedError", "ProviderError", "ProviderNotConfiguredError", "ProviderNotFoundError",
    "SandboxViolation", "StatekClientAPI", "StatekError", "StatekPushQueue", "StatekSettings",
    "StoreDamagedError", "StoreLockedError", "SupervisedAgent", "UnstorableValueError",
    "__version__", "add_provider",
    "close", "commit_all", "connect",
    "get_provider", "get_statek_settings", "init", "open_default_store", "open_prefix",
    "speedups_enabled", "start_statek", "start_statek_async", "tool",
]  # fmt: skip

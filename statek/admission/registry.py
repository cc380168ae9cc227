"""Which limiter a model call goes through: one per (provider, model, account) per worker.

Built from the settings bound by `statek.init` (`rate_limits`, `rate_limit_window`,
`rate_limit_learn`) on first use in a running event loop, and rebuilt when either changes.
With no limits configured and learning off, `limiter_for` answers None after one check, so
the offline path (scripted provider, benchmarks) pays nothing for admission control.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from statek import store
from statek.admission.estimate import Estimator, load_estimator
from statek.admission.limiter import Limiter, Limits
from statek.settings import StatekSettings

__all__ = ["Admission", "active", "limiter_for", "limits_for", "reset"]


def limits_for(table: dict[str, dict[str, float]], provider: str, model: str,
               window: float, headroom: float = 0.0) -> Limits | None:
    """The most specific entry for provider/model: exact, 'provider/*', 'provider', '*'."""
    for target in (f"{provider}/{model}", f"{provider}/*", provider, "*"):
        spec = table.get(target)
        if spec is not None:
            concurrency = spec.get("concurrency")
            return Limits(spec.get("rpm"), spec.get("tpm"),
                          None if concurrency is None else int(concurrency), window, headroom)
    return None


class Admission:
    """The limiters of one worker (one settings object, one event loop)."""

    def __init__(self, settings: StatekSettings, loop: asyncio.AbstractEventLoop | None) -> None:
        self.settings = settings
        self.loop = loop
        self.table = settings.rate_limits
        self.window = settings.rate_limit_window
        self.headroom = settings.rate_limit_headroom
        self.learn = settings.rate_limit_learn
        self.enabled = bool(self.table) or self.learn
        self.max_refusals = settings.rate_limit_max_refusals
        self.estimate: Estimator = load_estimator(settings.rate_limit_estimator)
        self._by_key: dict[tuple[str, str, str | None], Limiter | None] = {}

    def limiter(self, provider: Any, model: str) -> Limiter | None:
        """The limiter shared by every call to `model` with `provider`'s account, or None
        when neither the settings nor learning apply to it. Keyed by the provider's name and
        account, not the object: a wrapped or rebuilt provider shares its limiter."""
        name = str(getattr(provider, "name", None) or type(provider).__name__)
        account: str | None = getattr(provider, "account", None)  # HTTP providers have one
        key = (name, model, account)
        found = self._by_key.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        made = self._make(provider, name, model, account)
        self._by_key[key] = made
        return made

    def _make(self, provider: Any, name: str, model: str,
              account: str | None) -> Limiter | None:
        limits = limits_for(self.table, name, model, self.window, self.headroom)
        probe = limits is None
        if limits is None:
            if not (self.learn and account is not None):  # only HTTP replies carry headers
                return None
            limits = Limits(window=self.window, headroom=self.headroom)
        connections = getattr(provider, "max_connections", None)
        if isinstance(connections, int) and (limits.concurrency or connections + 1) > connections:
            # an admitted call is sent at once, not queued for a connection: the server then
            # counts it when the limiter did
            limits = dataclasses.replace(limits, concurrency=connections)
        assert self.loop is not None, "limiters are made inside the worker's event loop"
        return Limiter(f"{name}/{model}", limits, loop=self.loop, probe=probe)

    def limiters(self) -> list[Limiter]:
        """Every limiter made so far (for stats and tests)."""
        return [limiter for limiter in self._by_key.values() if limiter is not None]


_state: list[Admission | None] = [None]


def current_limiters() -> list[Limiter]:
    """The limiters made so far in this process, without making an Admission (metrics)."""
    current = _state[0]
    return [] if current is None else current.limiters()


def active() -> Admission:
    """The Admission of the current settings and event loop (made or rebuilt on demand;
    after a worker's loop ended, its limiters stay readable until the next loop starts)."""
    settings = store.settings()
    current = _state[0]
    if current is None or current.settings is not settings:
        current = _state[0] = Admission(settings, _running_loop())
        return current
    if not current.enabled:
        return current
    loop = _running_loop()
    # a limiter's futures belong to one loop; outside any loop the last one's are kept
    if current.loop is not loop and loop is not None:
        current = _state[0] = Admission(settings, loop)
    return current


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def limiter_for(provider: Any, model: str) -> Limiter | None:
    """The limiter a call must pass, or None (no admission control for it)."""
    admission = active()
    if not admission.enabled:
        return None
    return admission.limiter(provider, model)


def reset() -> None:
    """Forget every limiter (tests; a process that rebinds its settings gets this anyway)."""
    _state[0] = None

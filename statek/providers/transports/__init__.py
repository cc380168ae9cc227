"""HTTP transports for the providers, and the choice between them.

"auto" takes `asyncio`, statek's own HTTP/1.1 client on the event loop (asyncio_client.py):
on W9 it spends the least worker CPU per model call of the three (docs/workloads.md: 1.2-1.5x
the calls/s of pyreqwest on the same run), and a worker's throughput is bounded by that CPU.
It speaks HTTP/1.1 over TCP or TLS, which every model API and local server answers; it does not
follow redirects or speak HTTP/2. `pyreqwest` (statek[fast]) and `aiohttp` stay available by
name for deployments that want a general-purpose library. All three pass the same provider
tests (tests/unit/test_providers_http.py runs on each).
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from statek.errors import ConfigurationError
from statek.providers.transports.base import Transport, TransportConfig

__all__ = ["HTTP_CLIENTS", "HTTPClientName", "available_clients", "make_transport",
           "resolve_client"]

HTTPClientName = Literal["auto", "asyncio", "aiohttp", "pyreqwest"]
HTTP_CLIENTS: tuple[str, ...] = ("auto", "asyncio", "aiohttp", "pyreqwest")


def available_clients() -> list[str]:
    """The clients that can be used here, preferred first."""
    found = ["asyncio", "aiohttp"]
    if importlib.util.find_spec("pyreqwest") is not None:
        found.insert(1, "pyreqwest")
    return found


def resolve_client(name: str) -> str:
    """The concrete client for `name` ("auto": the preferred one installed);
    ConfigurationError for an unknown or uninstalled one."""
    if name not in HTTP_CLIENTS:
        raise ConfigurationError(
            f"unknown HTTP client {name!r}: choose one of {', '.join(HTTP_CLIENTS)}"
        )
    available = available_clients()
    if name == "auto":
        return available[0]
    if name not in available:
        raise ConfigurationError(
            f"HTTP client {name!r} is not installed: pip install 'statek[fast]' "
            "(or set STATEK_PROVIDER_HTTP_CLIENT=auto)"
        )
    return name


def make_transport(name: str, config: TransportConfig) -> Transport:
    """A new transport of client `name` (already resolved), bound to the running loop."""
    if name == "pyreqwest":
        from statek.providers.transports.reqwest_client import ReqwestTransport

        return ReqwestTransport(config)
    if name == "asyncio":
        from statek.providers.transports.asyncio_client import AsyncioTransport

        return AsyncioTransport(config)
    from statek.providers.transports.aiohttp_client import AiohttpTransport

    return AiohttpTransport(config)

"""Who may call the API: a bearer token compared in constant time, loopback binds only
without one. Shared by the worker's API and a front process (statek.server.front)."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from statek.errors import ConfigurationError
from statek.server.errors import ApiError

#: Probes need no token.
OPEN_PATHS = frozenset({"/v1/health", "/healthz", "/readyz"})


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, has_token: bool) -> None:
    """A non-loopback host without a token is refused."""
    if not loopback(host) and not has_token:
        raise ConfigurationError(
            f"refusing to serve the HTTP API on {host} without a token: set http_token "
            "(STATEK_HTTP_TOKEN) or bind 127.0.0.1")


def authorize(request: web.Request, token: bytes | None) -> None:
    """401 unless the request carries `token` (None: no token needed)."""
    if token is None or request.path in OPEN_PATHS:
        return
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
        told = ("the bearer token is not this worker's (setting http_token)"
                if scheme.lower() == "bearer" and value.strip() else
                "this API needs 'Authorization: Bearer <token>' (setting http_token)")
        raise ApiError(401, "unauthorized", told, headers={"WWW-Authenticate": "Bearer"})

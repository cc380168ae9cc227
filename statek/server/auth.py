"""Who may call the API: a bearer token compared in constant time, loopback binds only
without one. Shared by the worker's API and a front process (statek.server.front)."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from pydantic import SecretStr

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


#: The shortest token that may guard an address other than loopback.
MIN_PUBLIC_TOKEN = 16


def check_bind(host: str, token: SecretStr | None) -> None:
    """Refuse a token that lets anyone in (empty: `Authorization: Bearer` with nothing after
    it would match) and a non-loopback host without a token, or with a short one."""
    secret = None if token is None else token.get_secret_value()
    if secret is not None and not secret.strip():
        raise ConfigurationError(
            "http_token (STATEK_HTTP_TOKEN) is set but empty: it would let every request in; "
            "unset it (then only 127.0.0.1 can be served) or set a real one, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if loopback(host):
        return
    if secret is None:
        raise ConfigurationError(
            f"refusing to serve the HTTP API on {host} without a token: set http_token "
            "(STATEK_HTTP_TOKEN) or bind 127.0.0.1")
    if len(secret.strip()) < MIN_PUBLIC_TOKEN:
        raise ConfigurationError(
            f"refusing to serve the HTTP API on {host} with a token of {len(secret.strip())} "
            f"characters: a public address needs at least {MIN_PUBLIC_TOKEN}, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


def authorize(request: web.Request, token: bytes | None) -> None:
    """401 unless the request carries `token` (None: no token needed)."""
    if token is None or request.path in OPEN_PATHS:
        return
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if (scheme.lower() != "bearer" or not token.strip()  # an empty token admits no one
            or not hmac.compare_digest(value.strip().encode(), token)):
        told = ("the bearer token is not this worker's (setting http_token)"
                if scheme.lower() == "bearer" and value.strip() else
                "this API needs 'Authorization: Bearer <token>' (setting http_token)")
        raise ApiError(401, "unauthorized", told, headers={"WWW-Authenticate": "Bearer"})

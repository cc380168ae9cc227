"""The worker's observability routes: GET /metrics, /healthz, /readyz (aiohttp handlers).

/healthz and /readyz need no token (probes of an orchestrator); /metrics is behind the API's
token when one is set, like every other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from statek import _json
from statek.observability import health, metrics
from statek.settings import StatekSettings


def _json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_json.dumps(data), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json_response(health.health())


def readyz_handler(settings: StatekSettings) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(request: web.Request) -> web.Response:
        ready, details = health.readiness(settings.ready_deadline)
        return _json_response(details, 200 if ready else 503)

    return readyz


async def metrics_page(request: web.Request) -> web.Response:
    if not metrics.AVAILABLE:
        return web.Response(status=501, text=metrics.MISSING)
    body = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response


def add_routes(app: web.Application, settings: StatekSettings) -> None:
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz_handler(settings))

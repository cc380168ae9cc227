"""The web dashboard: fleet overview, job list, job pages, following the worker's SSE stream.

Served by the worker's HTTP server under /dashboard (`mount`, called by
`statek.server.app.make_app`), or by `statek dashboard` from a read-only process over the
embedded store (`statek.dashboard.readonly`). Pages are rendered on the server (jinja2,
autoescaped); static/dashboard.js, written for this project, follows the event stream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

log = logging.getLogger("statek.dashboard")


def mount(app: web.Application, api: Any) -> None:
    """Add the dashboard to the worker's API app (before it starts): routes, the sign-in
    middleware (outermost, so it runs before the API's token check), and the sampler."""
    try:
        from statek.dashboard.sampler import worker_sampler
        from statek.dashboard.web import Access, Pages, add_routes, make_middleware
    except ImportError as exc:  # jinja2 missing from a hand-made install: the API still runs
        log.warning("dashboard disabled: %s", exc)
        return
    access = Access(api.settings.http_token, writable=True)
    sampler = worker_sampler()
    app.middlewares.insert(0, make_middleware(access, guard_api=False))
    add_routes(app, Pages(access, sampler, "worker"))

    async def sampling(_: web.Application) -> AsyncIterator[None]:
        async with sampler.running():
            yield

    app.cleanup_ctx.append(sampling)

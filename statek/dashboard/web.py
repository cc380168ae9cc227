"""The dashboard's pages, its sign-in, and the middleware that lets a browser use the API.

A browser cannot put `Authorization: Bearer` on a page load or an EventSource, so a server
with `http_token` signs a browser in with a cookie: the token is typed once on
/dashboard/login, the cookie holds an HMAC of it (never the token), and the middleware turns
a valid cookie into the bearer header the API checks, for GET requests (pages, streams) and
for writes that carry the `X-Statek-Dashboard` header (a cross-site form cannot set it, so
the cookie alone never writes). Without `http_token` the dashboard is readable by anyone who
reaches the (loopback) address and shows no write buttons: writes need the token.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from pydantic import SecretStr

from statek._version import __version__
from statek.dashboard import data
from statek.dashboard.sampler import Sampler, chart
from statek.models.status import STATUS_NAMES
from statek.server.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
COOKIE = "statek_dashboard"
WRITE_HEADER = "X-Statek-Dashboard"
_CAN_WRITE = "statek.dashboard.can_write"
STATIC = {"dashboard.js", "dashboard.css"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


class Access:
    """Who may read and write, from the server's token and the request's cookie/header."""

    def __init__(self, token: SecretStr | None, writable: bool) -> None:
        self.token = None if token is None else token.get_secret_value().encode()
        self.writable = writable  # False in `statek dashboard` (a read-only store)

    def session_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token, b"statek-dashboard-session", hashlib.sha256).hexdigest()

    def signed_in(self, request: web.Request) -> bool:
        if self.token is None:
            return False
        given = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(given.encode(), self.session_value().encode())

    def bearer_ok(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return (self.token is not None and scheme.lower() == "bearer"
                and hmac.compare_digest(value.strip().encode(), self.token))

    def can_read(self, request: web.Request) -> bool:
        return self.token is None or self.signed_in(request) or self.bearer_ok(request)

    def can_write(self, request: web.Request) -> bool:
        decided = request.get(_CAN_WRITE)  # decided before as_bearer added the header
        if decided is not None:
            return bool(decided)
        return self.writable and (self.signed_in(request) or self.bearer_ok(request))

    def as_bearer(self, request: web.Request) -> web.Request:
        """The request with the server's bearer header (the API's auth then passes)."""
        assert self.token is not None
        headers = request.headers.copy()
        headers["Authorization"] = "Bearer " + self.token.decode()
        clone = request.clone(headers=headers)
        clone[_CAN_WRITE] = self.can_write(request)
        return clone


def make_middleware(access: Access, guard_api: bool) -> Any:
    """Dashboard paths: sign-in first when there is a token. API paths: a signed-in browser
    gets the bearer header (GETs, and writes that carry WRITE_HEADER). `guard_api`: no other
    middleware checks the API's token (the read-only server), so refuse here."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if access.token is None:
            return await handler(request)
        if path == "/dashboard" or path.startswith("/dashboard/"):
            open_path = path == "/dashboard/login" or path.startswith("/dashboard/static/")
            if not open_path and not access.can_read(request):
                target = "/dashboard/login?" + urlencode({"next": request.path_qs})
                raise web.HTTPSeeOther(target)
            return await handler(access.as_bearer(request))
        if access.bearer_ok(request):
            return await handler(request)
        if access.signed_in(request) and (request.method in ("GET", "HEAD")
                                          or request.headers.get(WRITE_HEADER) == "1"):
            return await handler(access.as_bearer(request))
        if guard_api:
            return ApiError(401, "unauthorized", "sign in on /dashboard/login or send "
                            "'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"}).response()
        return await handler(request)

    return middleware


class Pages:
    """The HTML pages (server-rendered; dashboard.js only follows the event stream)."""

    def __init__(self, access: Access, sampler: Sampler, mode: str) -> None:
        self.access = access
        self.sampler = sampler
        self.mode = mode  # "worker" or "read-only"

    def render(self, request: web.Request, name: str, status: int = 200,
               **context: Any) -> web.Response:
        page = _env.get_template(name).render(
            version=__version__, mode=self.mode, statuses=STATUS_NAMES,
            can_write=self.access.can_write(request),
            signed_in=self.access.signed_in(request),
            token_needed=self.access.token is not None, **context)
        return web.Response(status=status, text=page, content_type="text/html",
                            headers={"Content-Security-Policy": CSP,
                                     "X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-store"})

    async def overview(self, request: web.Request) -> web.Response:
        done, failed = self.sampler.rates()
        latest = self.sampler.latest()
        unit = self.sampler.unit
        charts = [chart(done, f"{unit} per second", "/s"),
                  chart(failed, "failures per minute", "/min")]
        return self.render(request, "overview.html", page="overview", data=await data.overview(),
                           charts=charts, latest=latest, unit=unit)

    async def jobs(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        query["status"] = ",".join(request.query.getall("status", []))
        wanted, problems = data.parse_filter(query)
        page = await data.job_page(wanted)
        more = None
        if page["next_cursor"] is not None:
            query = {k: v for k, v in request.query.items() if k != "cursor"}
            more = "/dashboard/jobs?" + urlencode({**query, "cursor": page["next_cursor"]})
        return self.render(request, "jobs.html", status=400 if problems else 200,
                           page="jobs", problems=problems, wanted=wanted, listing=page,
                           more=more, chosen={STATUS_NAMES[s] for s in wanted.statuses})

    async def job(self, request: web.Request) -> web.Response:
        from statek.server.views import fetch_job

        job_uuid = request.match_info["uuid"]
        try:
            job = fetch_job(job_uuid)
        except ApiError as exc:
            return self.render(request, "missing.html", status=404, page="job",
                               message=exc.message)
        return self.render(request, "job.html", page="job", job=data.job_view(job),
                           rendered_at=time.time())

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return web.Response(body=(HERE / "static" / name).read_bytes(), content_type=kind,
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    async def login_form(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html", page="login", problem="",
                           next=_safe_next(request.query.get("next")))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("token", ""))
        target = _safe_next(str(form.get("next", "")))
        token = self.access.token
        if token is None:
            raise web.HTTPSeeOther(target)
        if not hmac.compare_digest(given.strip().encode(), token):
            return self.render(request, "login.html", status=401, page="login",
                               problem="that is not this server's token", next=target)
        response = web.HTTPSeeOther(target)
        response.set_cookie(COOKIE, self.access.session_value(), httponly=True,
                            samesite="Strict", path="/")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/dashboard/login")
        response.del_cookie(COOKIE, path="/")
        return response


def _safe_next(target: str | None) -> str:
    """Only a path on this dashboard (never another site)."""
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return quote(target, safe="/?=&%:,-_.~+")
    return "/dashboard"


def add_routes(app: web.Application, pages: Pages) -> None:
    app.router.add_get("/dashboard", pages.overview)
    app.router.add_get("/dashboard/", pages.overview)
    app.router.add_get("/dashboard/jobs", pages.jobs)
    app.router.add_get("/dashboard/jobs/{uuid}", pages.job)
    app.router.add_get("/dashboard/static/{name}", pages.static)
    app.router.add_get("/dashboard/login", pages.login_form)
    app.router.add_post("/dashboard/login", pages.login)
    app.router.add_post("/dashboard/logout", pages.logout)

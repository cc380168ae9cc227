"""Reading request bodies and queries: types checked, unknown fields refused, by name."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from statek import _json
from statek.models.submit import check_job_params
from statek.server.auth import authorize
from statek.server.errors import ApiError, bad_field

#: the largest request body the app accepts (bytes), for the error that names it
MAX_BODY = web.AppKey("max_body", int)

#: The fields of a submit and of a batch submit.
SUBMIT_FIELDS = ("agent", "vars", "locale", "params")
BATCH_FIELDS = ("agent", "vars_batch", "locale", "params")
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,200}")
#: What a statek uuid (or an outbox id) can look like: checked before any store lookup.
ID = re.compile(r"[A-Za-z0-9]{1,64}")
_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer"}
#: 19+ digits in a row: maybe an integer beyond 64 bits, which orjson reads as a float
_LONG_DIGITS = re.compile(rb"\d{19,}")
#: A \uD800-\uDFFF escape: maybe a lone surrogate, which orjson refuses and json reads
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def json_body(request: web.Request, allowed: tuple[str, ...],
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body as a JSON object holding only `allowed` fields and every `required` one."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {request.content_type!r}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(request.app[MAX_BODY]) from exc
    try:
        body = _loads(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json",
                       f"the body must be a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_field(unknown[0], f"unknown field (allowed: {', '.join(allowed)})")
    for name in required:
        if name not in body:
            raise bad_field(name, "required")
    return body


def _loads(raw: bytes) -> Any:
    """The body parsed; integers kept exact: orjson turns one beyond 64 bits into a float
    (a big id would be stored rounded), so a body that may hold one is parsed by the
    standard library, and the storable checks refuse what dbzero cannot hold, by name. The
    standard library's reading is held to orjson's: NaN and lone surrogates are refused."""
    if _LONG_DIGITS.search(raw) is None and _json.JSON_BACKEND == "orjson":
        return _json.loads(raw)
    body = json.loads(raw, parse_constant=_no_constant)
    if _SURROGATE_ESCAPE.search(raw) is not None:
        _refuse_lone_surrogates(body)
    return body


def _refuse_lone_surrogates(body: Any) -> None:
    """Refuse what orjson refuses, whichever parser read the body: a string holding half of
    a surrogate pair is not Unicode text (and cannot be written out as UTF-8 again)."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (a \\ud800-\\udfff escape that "
                         "is not half of a pair)") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large",
                    f"the body exceeds the limit of {limit} bytes (setting http_max_body)")


def typed(body: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """body[name] if of `kind` (None or absent gives `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if type(value) is not kind:
        raise bad_field(name, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                              f"not {type(value).__name__}")
    return value


def uuid_text(value: str, field: str) -> str:
    if not ID.fullmatch(value):
        raise bad_field(field, f"{value[:80]!r} is not a statek uuid")
    return value


def idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header, checked (a retried request with it creates nothing new)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise bad_field("Idempotency-Key", "1-200 characters of A-Z a-z 0-9 . _ : -")
    return key


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_field(name, f"must be an integer, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise bad_field(name, f"must be between {low} and {high}, not {value}")
    return value


def submission(body: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """(agent role or uuid, locale, job params) of a submit's body, checked."""
    agent_ref = typed(body, "agent", str)
    if not agent_ref:
        raise bad_field("agent", "required: an agent role or uuid")
    locale = typed(body, "locale", str)
    params = typed(body, "params", dict, {})
    try:
        check_job_params(params)
    except ValueError as exc:
        raise ApiError(422, "invalid_param", str(exc), "params") from None
    return agent_ref, locale, params


async def answered(request: web.Request, handler: Any, token: bytes | None,
                   max_body: int) -> web.StreamResponse:
    """The handler's response, with the bearer token checked first, and every refusal
    (statek's, or aiohttp's own 404/405/413) as a JSON error body."""
    try:
        authorize(request, token)
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge:
        return too_large(max_body).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return ApiError(exc.status, "http_error", exc.reason).response()
    except ConnectionResetError:  # the client went mid-request: nothing to answer, no
        return web.Response(status=400, text="connection lost")  # traceback in the log


def vars_batch(body: Mapping[str, Any], limit: int) -> list[Any]:
    """body["vars_batch"]: 1 to `limit` objects (or nulls)."""
    batch: list[Any] = typed(body, "vars_batch", list)
    if not 0 < len(batch) <= limit:
        raise bad_field("vars_batch", f"must hold 1 to {limit} objects (setting "
                                      f"http_max_batch), not {len(batch)}")
    for index, item in enumerate(batch):
        if item is not None and type(item) is not dict:
            raise bad_field(f"vars_batch[{index}]",
                            f"must be an object or null, not {type(item).__name__}")
    return batch

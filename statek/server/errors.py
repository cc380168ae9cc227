"""HTTP errors with a JSON body that names the problem (and the field, when there is one)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from statek import _json
from statek.errors import IllegalTransitionError, JobNotFoundError, UnstorableValueError


class ApiError(Exception):
    """A request the API refuses: `status` and a message a user can act on."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return web.Response(status=self.status, body=_json.dumps({"error": error}),
                            content_type="application/json", headers=self.headers)


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer of the HTTP API (the worker's and the front's handlers)."""
    return web.Response(status=status, body=_json.dumps(data), content_type="application/json")


def bad_field(field: str, message: str) -> ApiError:
    """400 naming the field of the request body (or query) that is wrong."""
    return ApiError(400, "invalid_field", f"{field}: {message}", field)


#: How the Python API names a job's variables in its errors: `shared_vars['n']`,
#: `shared_vars_batch[2]['n']`.
_PYTHON_VARS = re.compile(r"shared_vars(?:_batch(\[\d+\]))?((?:\['[^']*'\])*)")


def unstorable(exc: Exception) -> ApiError:
    """422 for a value no job could store, naming the request's field (`vars['n']`,
    `vars_batch[2]['n']`) where the Python API's message names its parameter."""
    text = str(exc)
    found = _PYTHON_VARS.match(text)
    if found is None:
        return ApiError(422, "unstorable_value", text)
    field = ("vars" if found.group(1) is None else "vars_batch" + found.group(1)) + found.group(2)
    return ApiError(422, "unstorable_value", field + text[found.end():], field)


@contextlib.contextmanager
def refusals(*, lookups_and_values: bool = False) -> Iterator[None]:
    """statek's refusals of a call as 4xx naming the problem; `lookups_and_values`: also a
    LookupError (an agent not found) as 404 and a TypeError or ValueError as 422."""
    try:
        yield
    except UnstorableValueError as exc:  # a TypeError: before the general case
        raise unstorable(exc) from None
    except JobNotFoundError as exc:  # a LookupError: likewise
        raise ApiError(404, "job_not_found", str(exc)) from None
    except IllegalTransitionError as exc:
        raise ApiError(409, "illegal_transition", str(exc)) from None
    except LookupError as exc:
        if not lookups_and_values:
            raise
        raise ApiError(404, "agent_not_found", str(exc), "agent") from None
    except (TypeError, ValueError) as exc:
        if not lookups_and_values:
            raise
        raise ApiError(422, "invalid_value", str(exc)) from None

"""The OpenAPI 3.1 document the API serves at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

from statek._version import __version__
from statek.settings import StatekSettings

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "A retried request with the same key and body gets the first answer "
                       "(header Idempotent-Replayed: true); 1-200 of A-Z a-z 0-9 . _ : -",
        "schema": {"type": "string", "maxLength": 200}}
_PREFER = {"name": "Prefer", "in": "header", "required": False,
           "description": "respond-async (without an Idempotency-Key, while the worker loop "
                          "runs): the jobs are written durably to the worker's outbox and "
                          "answered 202 with outbox ids, status PENDING; a read by such an id "
                          "applies it first; listings show the jobs once the loop applied them",
           "schema": {"type": "string"}}
_UUID = {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}
_SSE = {"200": {"description": "text/event-stream of `status` and `console` events (ids "
                               "resume with Last-Event-ID), `gap` when events were lost",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


_LIMIT = {"type": ["number", "null"], "minimum": 0}
_BUDGET = {"type": "object", "additionalProperties": False, "properties": {
    "tokens": _LIMIT, "cost": _LIMIT, "steps": _LIMIT, "seconds": _LIMIT,
    "policy": {"enum": ["suspend", "fail", None]}}}
_RAISE = {**_BUDGET, "properties": {k: _LIMIT for k in ("tokens", "cost", "steps", "seconds")}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, code: str = "200") -> dict[str, Any]:
    return {code: {"description": description, "content": {"application/json": {}}},
            "4XX": _ERROR}


def openapi_document(settings: StatekSettings) -> dict[str, Any]:
    submission = {"agent": {"type": "string", "description": "agent role or uuid"},
                  "locale": {"type": ["string", "null"]},
                  "params": {"type": "object", "description": "job params: model, provider, "
                             "metadata, warmup_code, others stored with the job definition"}}
    paths: dict[str, Any] = {
        "/v1/health": {"get": {"summary": "liveness (no token needed)", "responses": _ok("ok")}},
        "/v1/openapi.json": {"get": {"summary": "this document", "responses": _ok("OpenAPI")}},
        "/v1/agents": {"get": {"summary": "agents", "responses": _ok("agents")}},
        "/v1/agents/{agent}/events": {"post": {
            "summary": "queue an event for a supervised agent (it becomes a job)",
            "parameters": [{"name": "agent", "in": "path", "required": True,
                            "schema": {"type": "string"}}, _KEY],
            "requestBody": _body({"type": "object", "required": ["event"],
                                  "properties": {"event": {}}}),
            "responses": _ok("queued: {seq}", "202")}},
        "/v1/jobs": {
            "post": {"summary": "submit one job", "parameters": [_KEY, _PREFER],
                     "requestBody": _body({"type": "object", "required": ["agent"],
                                           "additionalProperties": False, "properties": {
                                               **submission, "vars": {"type": "object"}}}),
                     "responses": {**_ok("created: {job, status}", "201"),
                                   "202": {"description": "accepted (Prefer: respond-async):"
                                                          " {job: outbox id, status: PENDING}"}}},
            "get": {"summary": "list jobs (paged; a page may hold fewer than limit)",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"},
                         "description": "status names, comma-separated"},
                        {"name": "agent", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
                        {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}}],
                    "responses": _ok("{jobs, next_cursor, total}: total counts every job "
                                     "in the store, whatever the filters")}},
        "/v1/jobs/batch": {"post": {
            "summary": f"submit up to {settings.http_max_batch} jobs, all or none",
            "parameters": [_KEY, _PREFER],
            "requestBody": _body({"type": "object", "required": ["agent", "vars_batch"],
                                  "additionalProperties": False, "properties": {
                                      **submission, "vars_batch": {
                                          "type": "array", "items": {"type": ["object", "null"]},
                                          "maxItems": settings.http_max_batch}}}),
            "responses": {**_ok("created: {jobs}", "201"),
                          "202": {"description": "accepted (Prefer: respond-async): "
                                                 "{jobs: [outbox id], status: PENDING}"}}}},
        "/v1/counts": {"get": {"summary": "jobs by status and by agent",
                               "responses": _ok("{by_status, by_agent, total}")}},
        "/v1/jobs/{uuid}": {"get": {
            "summary": "a job: status, exit_status, error, console, chat_log, usage, locals",
            "parameters": [_UUID], "responses": _ok("the job")}},
        "/v1/jobs/{uuid}/messages": {"post": {
            "summary": "queue a message for a job", "parameters": [_UUID, _KEY],
            "requestBody": _body({"type": "object", "required": ["message"],
                                  "properties": {"message": {}}}),
            "responses": _ok("queued: {seq}", "202")}},
        "/v1/jobs/{uuid}/cancel": {"post": {
            "summary": "cancel a job", "parameters": [_UUID, _KEY],
            "responses": {**_ok("{cancelled, status}"),
                          "202": {"description": "queued (statek serve, a front process): "
                                                 "{cancelled, status, queued}"}}}},
        "/v1/jobs/{uuid}/events": {"get": {
            "summary": "SSE: the job's console so far and status, then changes",
            "parameters": [_UUID], "responses": _SSE}},
        "/v1/events": {"get": {"summary": "SSE: every job's status changes and console lines",
                               "responses": _SSE}},
        "/v1/jobs/{uuid}/budget": {
            "get": {"summary": "the job's budget: limits, spent, exhausted",
                    "parameters": [_UUID], "responses": _ok("{budget}")},
            "post": {"summary": "give the job a budget of its own (absolute limits, 0 is none) "
                                "and a policy; held jobs within it resume",
                     "parameters": [_UUID, _KEY], "requestBody": _body(_BUDGET),
                     "responses": _ok("{budget}")}},
        "/v1/jobs/{uuid}/budget/raise": {"post": {
            "summary": "add to the job's budget limits; held jobs within it resume",
            "parameters": [_UUID, _KEY], "requestBody": _body(_RAISE),
            "responses": _ok("{budget}")}},
        "/metrics": {"get": {"summary": "Prometheus metrics (statek[metrics])",
                             "responses": {"200": {"description": "text exposition format"}}}},
        "/healthz": {"get": {"summary": "the process is alive (no token needed)",
                             "responses": _ok("ok")}},
        "/readyz": {"get": {"summary": "the loop iterates within its deadline and the store is "
                                       "writable (503 otherwise; no token needed)",
                            "responses": {**_ok("ready"),
                                          "503": {"description": "not ready: why, as JSON",
                                                  "content": {"application/json": {}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "statek worker API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object", "properties": {"code": {"type": "string"},
                                                 "message": {"type": "string"},
                                                 "field": {"type": "string"}}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}] if settings.http_token is not None else [],
    }

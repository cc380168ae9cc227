"""The OpenAPI document lists exactly the routes the worker serves (the dashboard's HTML
pages aside): a route added without its documentation, or documented and gone, fails here."""

from __future__ import annotations

from statek.server.app import make_app
from statek.server.events import EventHub
from statek.server.openapi import openapi_document
from statek.settings import StatekSettings


def test_every_route_is_documented_and_every_documented_route_served(
        statek_store: str) -> None:
    settings = StatekSettings()
    app = make_app(settings, EventHub(16))
    served = {(route.method.lower(), route.resource.canonical)
              for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None
              and not route.resource.canonical.startswith("/dashboard")}
    documented = {(method, path) for path, item in openapi_document(settings)["paths"].items()
                  for method in item}
    assert served - documented == set(), "served but not in the OpenAPI document"
    assert documented - served == set(), "documented but not served"


def test_readiness_documents_its_not_ready_answer() -> None:
    """/readyz answers 503 when the loop stalls or the store is not writable; the document
    listed only 200 and 4XX."""
    responses = openapi_document(StatekSettings())["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(responses)

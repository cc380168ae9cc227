"""OpenTelemetry spans of a real worker loop, captured with the SDK's in-memory exporter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import dbzero as db0
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import statek
from statek.errors import ConfigurationError
from statek.executors.utils import run_jobs_loop
from statek.models.status import DONE
from statek.observability import tracing
from statek.settings import reset_settings_cache


@statek.tool
async def obs_lookup(key: str) -> str:
    return key.upper()


@pytest.fixture
def spans(statek_store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setenv("STATEK_TRACE_ENABLED", "true")
    reset_settings_cache()
    statek.init()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    provider.shutdown()


def by_name(found: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in found if s.name.startswith(prefix)]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_step_model_tool_and_delegation_spans(
        spans: InMemorySpanExporter, api: statek.StatekClientAPI) -> None:
    helper = statek.SupervisedAgent("obs-child", "", tools=[obs_lookup])
    helper.update_warmup_def("exit(obs_lookup('kid'))")
    boss = statek.Agent("obs-parent", "", metadata={"MODEL": "scripted/any"})
    parent = api.submit_new_job(boss, {"h": helper},
                                warmup_code="r = delegate(h).value\nprint(r)")
    await run_jobs_loop(10, queue_prefixes=["test"], auto_terminate=True)
    assert parent.state == DONE and parent.error is None
    found = spans.get_finished_spans()

    steps = by_name(found, "statek.step")
    parent_steps = [s for s in steps if attrs(s)["statek.agent"] == "obs-parent"]
    child_steps = [s for s in steps if attrs(s)["statek.agent"] == "obs-child"]
    assert parent_steps and child_steps
    assert {attrs(s)["statek.job.id"] for s in parent_steps} == {db0.uuid(parent)}

    (delegation,) = by_name(found, "statek.delegate")
    assert delegation.parent is not None
    assert delegation.parent.span_id in {s.context.span_id for s in parent_steps}
    for step in child_steps:  # every step of the child links to the delegation
        linked = [(link.context.trace_id, link.context.span_id) for link in step.links]
        assert (delegation.context.trace_id, delegation.context.span_id) in linked

    (tool,) = by_name(found, "execute_tool obs_lookup")
    assert attrs(tool)["gen_ai.tool.name"] == "obs_lookup"
    assert tool.parent is not None
    assert tool.parent.span_id in {s.context.span_id for s in child_steps}

    calls = by_name(found, "chat ")
    assert calls, [s.name for s in found]
    call = attrs(calls[0])
    assert call["gen_ai.system"] == "scripted"
    assert call["gen_ai.request.model"] == "any"
    assert call["gen_ai.usage.input_tokens"] > 0
    assert call["gen_ai.usage.output_tokens"] > 0
    assert calls[0].parent is not None
    assert calls[0].parent.span_id in {s.context.span_id for s in parent_steps}
    outcomes = {attrs(s)["statek.step.outcome"] for s in parent_steps}
    assert "completed" in outcomes and "suspended" in outcomes


def test_tracing_off_by_default_and_explicit_on_needs_a_provider_or_the_extra() -> None:
    tracing.configure(None)
    assert tracing.ENABLED is False  # no endpoint, no provider given
    tracing.configure(True)  # the extra is installed here: the global provider is used
    assert tracing.ENABLED is True
    tracing.configure(False)
    assert tracing.ENABLED is False


def test_explicit_on_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_otel", {})
    monkeypatch.setattr(tracing, "_import_otel", lambda: False)
    with pytest.raises(ConfigurationError, match=r"statek\[otel\]"):
        tracing.configure(True)
    tracing.configure(None)
    assert tracing.ENABLED is False


def test_otlp_export_when_an_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: spans reach that collector through the standard
    OTLP/HTTP exporter (here a collector stand-in on 127.0.0.1 that decodes the request)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "statek-test")
    monkeypatch.setattr(tracing, "_own_provider", None)
    try:
        tracing.configure(None)
        assert tracing.ENABLED
        tracing.start_tool("exported").end()
        tracing.flush()  # returns once the batch was posted
    finally:
        if tracing._own_provider is not None:
            tracing._own_provider.shutdown()
        server.shutdown()
        server.server_close()
    assert received, "nothing was exported"
    path, body = received[0]
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (resource,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "statek-test"
    names = [s.name for scope in resource.scope_spans for s in scope.spans]
    assert names == ["execute_tool exported"]

"""OpenTelemetry spans (statek[otel]): a span per step, per model call, per tool call, and a
delegation span that a child job's steps link to.

Nothing here imports OpenTelemetry until tracing is enabled, and the worker's hooks test
`ENABLED` before calling in: without the extra, or with it off, tracing costs one bool check.
Spans follow the GenAI semantic conventions for model and tool calls (gen_ai.system,
gen_ai.request.model, gen_ai.usage.input_tokens / output_tokens, gen_ai.tool.name).

Where spans go: a provider given to `use_tracer_provider` (tests, applications); else, when
OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, an SDK provider exporting with
the standard OTLP/HTTP exporter, configured by the usual OTEL_* variables; else the global
provider the application installed.
"""

from __future__ import annotations

import os
from typing import Any

from statek.errors import ConfigurationError

ENABLED = False
_tracer: Any = None
_given_provider: Any = None
_own_provider: Any = None
_otel: dict[str, Any] = {}
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def use_tracer_provider(provider: Any) -> None:
    """Send statek's spans to `provider` (an SDK TracerProvider); None forgets it."""
    global _given_provider, _tracer
    _given_provider, _tracer = provider, None


def _endpoint_configured() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def _import_otel() -> bool:
    if _otel:
        return True
    try:
        from opentelemetry import context, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return False
    _otel.update(context=context, trace=trace, Link=Link, SpanKind=SpanKind, Status=Status,
                 StatusCode=StatusCode, propagator=TraceContextTextMapPropagator())
    return True


def configure(enabled: bool | None) -> None:
    """Turn tracing on or off: True (the extra must be installed), False, or None (on when an
    OTLP endpoint is configured or a provider was given)."""
    global ENABLED, _tracer
    wanted = enabled if enabled is not None else (
        _given_provider is not None or _endpoint_configured())
    if not wanted:
        ENABLED = False
        return
    if not _import_otel():
        if enabled:
            raise ConfigurationError("trace_enabled needs OpenTelemetry: pip install "
                                     "'statek[otel]'")
        ENABLED = False
        return
    _tracer = _provider().get_tracer("statek")
    ENABLED = True


def _provider() -> Any:
    global _own_provider
    if _given_provider is not None:
        return _given_provider
    if _endpoint_configured():
        if _own_provider is None:
            _own_provider = _otlp_provider()
        return _own_provider
    return _otel["trace"].get_tracer_provider()


def _otlp_provider() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(f"an OTLP endpoint is set but the exporter is missing ({exc}): "
                                 "pip install 'statek[otel]'") from None
    name = os.environ.get("OTEL_SERVICE_NAME", "statek-worker")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def flush() -> None:
    """Export finished spans now (statek's own OTLP provider; others flush themselves)."""
    if _own_provider is not None:
        _own_provider.force_flush()


# ----------------------------------------------------------------------------- spans

class StepSpan:
    """A step's span and the context token that makes it current for the step's task."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self.token = token


def _link_of(job: Any) -> list[Any]:
    carrier = getattr(job, "traceparent", None)
    if not carrier:
        return []
    ctx = _otel["propagator"].extract({"traceparent": str(carrier)})
    parent = _otel["trace"].get_current_span(ctx).get_span_context()
    if not parent.is_valid:
        return []
    return [_otel["Link"](parent, {"statek.link": "delegated_by"})]


def start_step(job: Any, job_uuid: str, number: int) -> StepSpan:
    span = _tracer.start_span("statek.step", links=_link_of(job), attributes={
        "statek.job.id": job_uuid, "statek.step.number": number})
    token = _otel["context"].attach(_otel["trace"].set_span_in_context(span))
    return StepSpan(span, token)


def name_step(agent: str) -> None:
    span = _otel["trace"].get_current_span()
    span.update_name(f"statek.step {agent}")
    span.set_attribute("statek.agent", agent)


def end_step(step: StepSpan, agent: str, outcome: str) -> None:
    _otel["context"].detach(step.token)
    step.span.set_attribute("statek.step.outcome", outcome)
    if outcome == "failed":
        step.span.set_status(_otel["Status"](_otel["StatusCode"].ERROR, "the job failed"))
    step.span.end()


def start_model_call(system: str, model: str, request: Any) -> Any:
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": system,
                                  "gen_ai.request.model": model}
    max_tokens = getattr(request, "max_tokens", None)
    if isinstance(max_tokens, int):
        attributes["gen_ai.request.max_tokens"] = max_tokens
    return _tracer.start_span(f"chat {model}", kind=_otel["SpanKind"].CLIENT,
                              attributes=attributes)


def end_model_call(span: Any, reply: Any) -> None:
    usage = getattr(reply, "usage", None)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", int(usage.input_tokens))
        span.set_attribute("gen_ai.usage.output_tokens", int(usage.output_tokens))
    model = getattr(reply, "model", None)
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    span.end()


def start_tool(name: str) -> Any:
    return _tracer.start_span(f"execute_tool {name}", kind=_otel["SpanKind"].INTERNAL,
                              attributes={"gen_ai.operation.name": "execute_tool",
                                          "gen_ai.tool.name": name})


def end_error(span: Any, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(_otel["Status"](_otel["StatusCode"].ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def record_delegation(child: Any) -> None:
    """A short span for the delegation, its context kept on the child as `traceparent`."""
    import dbzero as db0

    span = _tracer.start_span("statek.delegate", attributes={
        "statek.child.job.id": str(db0.uuid(child))})
    carrier: dict[str, str] = {}
    _otel["propagator"].inject(carrier, context=_otel["trace"].set_span_in_context(span))
    span.end()
    if "traceparent" in carrier:
        child.traceparent = carrier["traceparent"]

"""OpenTelemetry traces: a span per HTTP request, per GraphQL operation, per SQL statement and per outgoing
HTTP call, joined to the caller's trace when the request carries ``traceparent`` (W3C trace context).

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard OpenTelemetry variables configure the OTLP
exporter: endpoint, headers, ``OTEL_SERVICE_NAME``); tests pass an in-memory exporter instead. SQL spans
come from the driver's instrumentation (asyncpg on PostgreSQL, which also sees the compiled reads sent past
SQLAlchemy; SQLAlchemy's cursor events on SQLite, which do not see the compiled reads sent straight to
aiosqlite), so each statement is one span.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def configure(app: Starlette, engine: AsyncEngine, exporter: SpanExporter | None = None) -> trace.Tracer:
    """Instrument ``app`` and ``engine`` when tracing is on; the tracer the GraphQL layer opens spans with
    (a no-op tracer when off, so callers never check)."""
    if exporter is None and not os.environ.get(ENDPOINT_VARIABLE):
        return trace.NoOpTracer()
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "programme-api")})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter) if exporter else BatchSpanProcessor(_otlp_exporter()))
    StarletteInstrumentor.instrument_app(app, tracer_provider=provider)
    tracer = provider.get_tracer("programme_api")
    if engine.dialect.name == "postgresql":
        AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    else:
        _trace_statements(engine, tracer)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return tracer


def _trace_statements(engine: AsyncEngine, tracer: trace.Tracer) -> None:
    """A span per statement from SQLAlchemy's cursor events (OpenTelemetry's SQLAlchemy instrumentation does
    not support SQLAlchemy 2.1 yet); the statement text is recorded, never its parameters."""
    dialect = engine.dialect.name

    def before(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        span = tracer.start_span(
            statement.split(None, 1)[0].upper() if statement.strip() else "SQL",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": dialect, "db.statement": statement},
        )
        context._programme_span = span

    def after(_conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        span = getattr(context, "_programme_span", None)
        if span is not None:
            span.end()

    def failed(context: Any) -> None:
        span = getattr(context.execution_context, "_programme_span", None)
        if span is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)


def _otlp_exporter() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def uninstrument() -> None:
    """Undo the process-wide driver and client instrumentation (tests, between apps)."""
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()

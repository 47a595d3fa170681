"""OpenTelemetry: a request that carries ``traceparent`` gets a server span in the caller's trace, with the
GraphQL operation and each SQL statement as spans below it (captured by the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncConnection

from programme_api import tracing
from programme_api.app import create_app

from .api import TokenBook
from .conftest import MigratedDatabase, as_app_role
from .factories import make_organisation, principal_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    tracing.uninstrument()


async def test_a_traced_request_is_one_trace_from_the_caller_to_the_database(
    migrated_database: MigratedDatabase, session_maker, connection: AsyncConnection, db,  # type: ignore[no-untyped-def]
    exporter: InMemorySpanExporter,
) -> None:  # fmt: skip
    organisation = await make_organisation(db)
    await db.commit()
    tokens = TokenBook()
    app = create_app(migrated_database.settings, engine=migrated_database.engine, session_maker=session_maker,
                     authenticate=tokens.authenticate)  # fmt: skip
    app.state.runtime.tracer = tracing.configure(app, connection.engine, exporter)
    served = as_app_role(app, migrated_database.backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t") as client:
        response = await client.post(
            "/graphql",
            json={"query": "mutation AddRegion { createRegion(input: {slug: \"coast\", name: \"Coast\"}) "
                           "{ region { slug } userErrors { code } } }"},
            headers={"Authorization": f"Bearer {tokens.issue(principal_for(organisation))}",
                     "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["data"]["createRegion"] == {"region": {"slug": "coast"}, "userErrors": []}

    everything = exporter.get_finished_spans()
    spans = [span for span in everything if format(span.context.trace_id, "032x") == TRACE_ID]
    # Outside the trace only the test harness's own role switch around the request (PostgreSQL).
    outside = [span for span in everything if span not in spans]
    assert all("ROLE" in str((span.attributes or {}).get("db.statement", "")) for span in outside), outside
    server = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(server) == 1
    assert server[0].parent is not None
    assert format(server[0].parent.span_id, "016x") == PARENT_SPAN_ID
    operation = [span for span in spans if span.name == "mutation AddRegion"]
    assert len(operation) == 1
    assert operation[0].attributes is not None
    assert operation[0].attributes["graphql.operation.name"] == "AddRegion"
    statements = [span for span in spans if span.attributes and "db.system" in span.attributes]
    assert statements, [span.name for span in spans]
    ids = {span.context.span_id: span for span in spans}

    def under_operation(span):  # type: ignore[no-untyped-def]
        while span.parent is not None and span.parent.span_id in ids:
            span = ids[span.parent.span_id]
            if span is operation[0]:
                return True
        return False

    assert any(under_operation(span) for span in statements)


async def test_tracing_is_off_without_an_endpoint(
    migrated_database: MigratedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_VARIABLE, raising=False)
    app = create_app(migrated_database.settings, engine=migrated_database.engine)
    assert not app.state.runtime.tracer.start_span("probe").is_recording()

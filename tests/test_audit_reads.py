"""Audited reads: written in their own transaction before the answer leaves, whatever becomes of the request.

Given data the API holds, when a caller reads health data or a participant's personal fields (lists, node,
nodes, nested links, exports), then exactly one event per request and target type names the rows and fields
read; when the request's unit of work rolls back, the event stays; when it cannot be written, no data leaves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect

from programme_api.app import create_app
from programme_api.domain.audit import AuditWriter
from programme_api.domain.models import AuditEvent, Role, SurveyResponse
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient, TokenBook
from .conftest import MigratedDatabase
from .factories import (
    audit_events,
    enrol,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_response,
    principal_for,
    shipped_instrument_ids,
)
from .test_evaluation import cohort

READER_SCOPES = {"programme:read", "surveys:read", "participants:read"}


@dataclass
class Api:
    """The app as the ``gql`` fixture builds it, with its runtime at hand (to swap the audit writer)."""

    app: Starlette
    gql: GraphQLClient

    def use_writer(self, writer: AuditWriter) -> None:
        self.app.state.runtime.audit_writer = writer

    @property
    def writer(self) -> AuditWriter:
        writer: AuditWriter = self.app.state.runtime.audit_writer
        return writer


@pytest.fixture
async def api(migrated_database: MigratedDatabase, session_maker: Any) -> AsyncIterator[Api]:
    tokens = TokenBook()
    app = create_app(migrated_database.settings, engine=migrated_database.engine, session_maker=session_maker,
                     authenticate=tokens.authenticate)  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield Api(app, GraphQLClient(client, tokens))


class FailingWriter:
    """An audit log that cannot be written (the database refuses, the disk is full...)."""

    async def write(self, organisation_id: Any, events: Sequence[AuditEvent]) -> None:
        raise OSError("the audit log is unreachable")


class SpyWriter:
    """Writes through the real writer and remembers what it wrote, in order."""

    def __init__(self, inner: AuditWriter) -> None:
        self.inner = inner
        self.actions: list[str] = []

    async def write(self, organisation_id: Any, events: Sequence[AuditEvent]) -> None:
        await self.inner.write(organisation_id, events)
        self.actions += [event.action for event in events]


async def world(db: AsyncSession) -> dict[str, Any]:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    people = [await make_participant(db, region) for _ in range(2)]
    responses = [await make_response(db, person, group, value=2) for person in people]
    return {"organisation": organisation, "region": region, "group": group, "people": people,
            "responses": responses, "reader": principal_for(organisation, scopes=READER_SCOPES, role=None)}  # fmt: skip


async def test_survey_responses_read_beside_a_failing_sibling_keep_their_audit_event(
    db: AsyncSession, gql: GraphQLClient, connection: AsyncConnection
) -> None:
    """The sibling fails on scope, so the request's unit of work rolls back; the read's event is written after
    that rollback, in a transaction of its own, and stays."""
    w = await world(db)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0] + (" TO" if statement.startswith("ROLLBACK TO") else ""))

    query = "query($p: ID!) { surveyResponses { edges { node { id score band } } } node(id: $p) { id } }"
    reader = principal_for(w["organisation"], scopes={"programme:read", "surveys:read"}, role=None)
    sa.event.listen(connection.sync_connection, "before_cursor_execute", seen)
    try:
        body = await gql.execute(query, {"p": to_global_id("Participant", w["people"][0].id)}, as_=reader)
    finally:
        sa.event.remove(connection.sync_connection, "before_cursor_execute", seen)

    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert {edge["node"]["band"] for edge in body["data"]["surveyResponses"]["edges"]} == {"moderately_severe"}
    [event] = await audit_events(db, "SurveyResponse.read")
    assert event.actor_id == reader.subject
    assert body["data"]["node"] is None
    assert event.details == {
        "ids": sorted(str(r.id) for r in w["responses"]), "count": 2, "fields": ["band", "id", "score"]
    }  # fmt: skip
    assert "ROLLBACK TO" in statements  # the request's unit of work was undone...
    assert statements.index("INSERT") > statements.index("ROLLBACK TO")  # ...and the audit written afterwards


async def test_a_read_in_a_rolled_back_mutation_is_kept_while_the_write_is_undone(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    """A submission answers with the score, a sibling mutation fails: the response is not stored (its write audit
    goes with it), the read of the score that left the server is on record."""
    w = await world(db)
    newcomer = await make_participant(db, w["region"])
    await enrol(db, newcomer, w["group"])
    instrument = (await shipped_instrument_ids(db))["phq9"]
    mutation = """mutation($ok: SubmitSurveyResponseInput!, $bad: SubmitSurveyResponseInput!) {
      stored: submitSurveyResponse(input: $ok) { response { id score band } userErrors { code } }
      refused: submitSurveyResponse(input: $bad) { response { id } userErrors { code } } }"""
    answers = [{"item": f"item{n}", "value": 3} for n in range(1, 9)] + [{"item": "item9", "value": 0}]
    ok = {
        "participantId": to_global_id("Participant", newcomer.id),
        "groupId": to_global_id("Group", w["group"].id),
        "instrumentId": to_global_id("SurveyInstrument", instrument),
        "timepoint": "BASELINE",
        "answers": answers,
    }
    bad = ok | {"timepoint": "EXIT", "answers": [*answers[:1], {"item": "item1", "value": 9}]}  # fmt: skip
    writer = principal_for(w["organisation"], scopes={"surveys:write", "programme:read"}, role=None)
    body = await gql.data(mutation, {"ok": ok, "bad": bad}, as_=writer)

    assert body["refused"]["userErrors"]  # a user error rolls the whole operation back...
    assert body["stored"]["response"]["band"] == "severe"  # ...yet this answer left the server
    stored = await db.scalar(sa.select(sa.func.count()).where(SurveyResponse.participant_id == newcomer.id))
    assert stored == 0
    [event] = await audit_events(db, "SurveyResponse.read")
    assert event.details["fields"] == ["band", "id", "score"]
    assert [e.action for e in await audit_events(db) if e.action.startswith("survey_response")] == []


async def test_participant_contact_details_are_audited_and_plain_fields_are_not(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    w = await world(db)
    plain = await gql.data("{ participants { nodes { reference } } }", as_=w["reader"])
    assert len(plain["participants"]["nodes"]) == 2
    assert await audit_events(db, "Participant.read") == []

    query = "{ participants { nodes { reference preferredName contactEmail } } }"
    data = await gql.data(query, as_=w["reader"])
    assert {node["contactEmail"] for node in data["participants"]["nodes"]} == {p.contact_email for p in w["people"]}
    [event] = await audit_events(db, "Participant.read")
    assert event.target_type == "Participant"
    assert event.details == {
        "ids": sorted(str(p.id) for p in w["people"]), "count": 2, "fields": ["contactEmail", "preferredName"]
    }  # fmt: skip
    assert all(p.contact_email not in str(event.details) for p in w["people"])  # ids and names, never the data


async def test_personal_fields_reached_through_a_link_are_audited(db: AsyncSession, gql: GraphQLClient) -> None:
    w = await world(db)
    query = "{ surveyResponses { nodes { participant { contactPhone } } } }"
    await gql.data(query, as_=w["reader"])
    [event] = await audit_events(db, "Participant.read")
    assert event.details["fields"] == ["contactPhone"]
    assert event.details["count"] == 2


async def test_node_and_nodes_of_a_survey_response_are_audited(db: AsyncSession, gql: GraphQLClient) -> None:
    w = await world(db)
    first, second = (str(to_global_id("SurveyResponse", r.id)) for r in w["responses"])
    data = await gql.data("query($id: ID!) { node(id: $id) { id } }", {"id": first}, as_=w["reader"])
    assert data["node"] == {"id": first}
    [by_node] = await audit_events(db, "SurveyResponse.read")
    assert by_node.target_id == str(w["responses"][0].id)
    assert by_node.details["fields"] == ["id"]

    query = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on SurveyResponse { answers } } }"
    await gql.data(query, {"ids": [first, second]}, as_=w["reader"])
    by_nodes = (await audit_events(db, "SurveyResponse.read"))[1]
    assert by_nodes.target_id is None
    assert by_nodes.details == {"ids": sorted(str(r.id) for r in w["responses"]), "count": 2, "fields": ["answers"]}


async def test_when_the_audit_cannot_be_written_no_survey_data_is_sent(db: AsyncSession, api: Api) -> None:
    w = await world(db)
    api.use_writer(FailingWriter())
    body = await api.gql.execute("{ surveyResponses { nodes { score band answers } } }", as_=w["reader"])
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert "moderately_severe" not in str(body)
    assert await audit_events(db, "SurveyResponse.read") == []
    plain = await api.gql.data("{ groups { nodes { name } } }", as_=w["reader"])  # nothing audited: answered
    assert plain["groups"]["nodes"] == [{"name": w["group"].name}]


async def test_an_export_is_audited_before_its_first_byte_even_when_cut_off(db: AsyncSession, api: Api) -> None:
    c = await cohort(db)
    spy = SpyWriter(api.writer)
    api.use_writer(spy)
    token = api.gql.tokens.issue(c["evaluator"])
    audited_when_headers_left: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            audited_when_headers_left.extend(spy.actions)
        elif message["type"] == "http.response.body":
            raise OSError("connection reset by peer")  # the client went away after the headers
        sent.append(message)

    path = "/exports/surveys.csv"
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}  # fmt: skip
    with pytest.raises(ClientDisconnect):
        await api.app(scope, receive, send)

    assert [message["status"] for message in sent] == [200]
    assert audited_when_headers_left == ["evaluation.exported"]
    [event] = await audit_events(db, "evaluation.exported")
    assert event.target_id == str(c["evaluator"].evaluation_project_id)
    assert event.details["format"] == "csv"


async def test_an_export_whose_audit_cannot_be_written_is_refused(db: AsyncSession, api: Api) -> None:
    c = await cohort(db)
    api.use_writer(FailingWriter())
    token = api.gql.tokens.issue(c["evaluator"])
    response = await api.gql.http.get("/exports/surveys.parquet", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert b"pseudonym" not in response.content
    assert await audit_events(db, "evaluation.exported") == []


async def test_coordinator_reads_are_audited_per_request_and_target_type(db: AsyncSession, gql: GraphQLClient) -> None:
    """One event per (action, target type) however many fields and rows a request reads."""
    w = await world(db)
    coordinator = principal_for(w["organisation"], role=Role.COORDINATOR, regions=[w["region"]])
    query = """{ a: surveyResponses(first: 1) { nodes { score participant { preferredName } } }
                 b: surveyResponses { nodes { band participant { contactEmail } } } }"""
    await gql.data(query, as_=coordinator)
    events = await audit_events(db)
    reads = sorted((e.action, e.details["count"]) for e in events if e.action.endswith(".read"))
    assert reads == [("Participant.read", 2), ("SurveyResponse.read", 2)]


async def test_the_service_commits_the_audit_on_its_own_connection(backend: str, tmp_path: Any) -> None:
    """As served (no shared test transaction): the app on its own engine, committed data, a read beside a failing
    sibling. The event is committed by the service's own writer (SQLite's single writer lock included)."""
    from sqlalchemy.engine import make_url

    from programme_api.config import Settings
    from programme_api.db import create_engine

    from .conftest import drop_postgres_database, empty_database_url, migrate

    url = await empty_database_url(backend, tmp_path, "audit_served")
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
        async with AsyncSession(engine, expire_on_commit=False) as db:
            w = await world(db)
            await db.commit()
        tokens = TokenBook()
        app = create_app(Settings(database_url=url), engine=engine, authenticate=tokens.authenticate)
        query = "query($p: ID!) { surveyResponses { nodes { score } } node(id: $p) { id } }"
        reader = principal_for(w["organisation"], scopes={"programme:read", "surveys:read"}, role=None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body = await GraphQLClient(client, tokens).execute(
                query, {"p": to_global_id("Participant", w["people"][0].id)}, as_=reader
            )
        assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
        assert len(body["data"]["surveyResponses"]["nodes"]) == 2
        async with engine.connect() as fresh:
            committed = (await fresh.execute(sa.select(AuditEvent.action, AuditEvent.details))).all()
        assert [(action, details["count"]) for action, details in committed] == [("SurveyResponse.read", 2)]
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_postgres_database(make_url(url).database or "")

"""Reads PostgreSQL answers as one JSON statement (``schema/sqljson.py``).

Each supported shape must give exactly the full executor's answer, from one statement, within the caller's
reach; anything else must fall back. The statement binds its own tenant for row-level security.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.app import create_app
from programme_api.domain import models
from programme_api.domain.access import compile_read, fetch_compiled, trusted
from programme_api.domain.models import Role
from programme_api.domain.principal import Principal
from programme_api.domain.tenancy import SETTING, bound_read
from programme_api.schema import sqljson

from .api import TokenBook
from .conftest import MigratedDatabase
from .factories import (
    assign,
    become_unprivileged_role,
    enrol,
    evaluator_for,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
    make_session,
    principal_for,
    record,
)
from .test_compiled_reads import seed

pytestmark = pytest.mark.only_backend("postgresql")

ONE_STATEMENT = {
    "benchmark_dashboard": """query RegionDashboard { regions { edges { node { name groups(first: 50) { edges {
        node { name facilitators { role facilitator { displayName } }
        sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins }
        } } } } } } } } } }""",
    "session_page": """{ sessions(first: 100) { edges { node { id startsAt endsAt status dropinCount
        cancellationReason } } } }""",
    "references_and_children": """{ groups(last: 4) { totalCount __typename nodes { id name topic deliveryMode
        venue capacity status version region { id slug name } facilitators { __typename role
        facilitator { id displayName trainingCompletedOn backgroundCheckExpiresOn assignments { role group { name } } }
        } sessions(first: 2) { totalCount nodes { group { name } attendance { status participant { reference } } }
        } } } }""",
    "aliases_fragments_directives": """query($skip: Boolean!, $n: Int) {
        a: groups(first: $n) { ...G } b: groups(first: 0) { nodes { name } }
        participants(first: 3) { edges { __typename node { ... on Participant { id reference
          enrolments { status group { name } participant { reference } } } } } }
        __typename }
        fragment G on GroupConnection { totalCount nodes { name region @skip(if: $skip) { name } } }""",
    "empty_lists": "{ facilitators(first: 2) { nodes { displayName assignments { role } } } }",
    "dated_filter": """{ compliant: facilitators(compliance: COMPLIANT, withinDays: 60) { totalCount nodes { displayName } }
        expiring: facilitators(compliance: CHECK_EXPIRING) { totalCount } }""",
}
VARIABLES: dict[str, dict[str, Any]] = {"aliases_fragments_directives": {"skip": False, "n": 2}}


async def post(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", sorted(ONE_STATEMENT))
async def test_one_statement_gives_the_full_executors_answer(
    db: AsyncSession, two_clients, statement_counter, name: str, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    query, variables = ONE_STATEMENT[name], VARIABLES.get(name, {})
    for principal in (principal_for(organisation), principal_for(organisation, role=Role.COORDINATOR)):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, **variables)
        assert statement_counter.count == 1, f"{name} was not answered by one statement"
        slow = await post(full, tokens, principal, query, **variables)
        assert "errors" not in slow, slow
        assert fast == slow


async def test_timestamps_and_ids_render_as_the_serialisers_do(db: AsyncSession, two_clients, backend: str) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    for micro in (0, 120000, 5, 999999):  # whole seconds, trailing zeros, a leading zero, all six digits
        await make_session(db, group, starts_at=datetime(2026, 3, 4, 19, 0, 7, micro, tzinfo=UTC))
    await make_session(db, group, starts_at=datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC))
    query = "{ sessions(first: 10) { nodes { id startsAt endsAt group { id } } } }"
    principal = principal_for(organisation)
    fast, slow = await post(compiled, tokens, principal, query), await post(full, tokens, principal, query)
    assert fast == slow
    starts = [node["startsAt"] for node in fast["data"]["sessions"]["nodes"]]
    assert starts[:2] == ["1999-12-31T23:59:59+00:00", "2026-03-04T19:00:07+00:00"]
    assert "2026-03-04T19:00:07.120000+00:00" in starts
    assert "2026-03-04T19:00:07.000005+00:00" in starts


async def test_a_region_bound_caller_sees_only_its_region_and_organisation(
    db: AsyncSession, two_clients, statement_counter, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, _ = two_clients
    organisation, other = await make_organisation(db), await make_organisation(db)
    mine, theirs = await make_region(db, organisation, name="Mine"), await make_region(db, organisation, name="Theirs")
    foreign = await make_region(db, other, name="Foreign")
    facilitator = await make_facilitator(db, organisation, display_name="Shared")
    for region in (mine, theirs):
        group = await make_group(db, region, name=f"Group in {region.name}")
        await assign(db, group, facilitator)
        person = await make_participant(db, region)
        await enrol(db, person, group)
        await record(db, await make_session(db, group), person, models.AttendanceStatus.PRESENT)
    await make_group(db, foreign, name="Group in Foreign")
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[mine])
    query = """{ regions { nodes { name groups { nodes { name } } } } groups { totalCount nodes { name } }
        facilitators { nodes { displayName assignments { group { name } } } }
        participants { nodes { enrolments { group { name } } } }
        sessions { nodes { group { name } attendanceCounts { present } } } }"""
    statement_counter.reset()
    body = await post(compiled, tokens, coordinator, query)
    assert statement_counter.count == 1
    text = str(body)
    assert "Group in Mine" in text
    assert "Theirs" not in text
    assert "Foreign" not in text
    assert body["data"]["groups"]["totalCount"] == 1
    assert body["data"]["facilitators"]["nodes"] == [
        {"displayName": "Shared", "assignments": [{"group": {"name": "Group in Mine"}}]}
    ]


async def test_what_it_cannot_answer_falls_back_and_is_remembered(
    db: AsyncSession, two_clients, statement_counter, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    for query in (
        "{ groups(first: 2) { pageInfo { hasNextPage endCursor } nodes { name } } }",  # cursors: level by level
        "{ groups { nodes { schedule { weekday } attendanceRate } } }",  # computed fields and roll-ups
        '{ groups(filter: {search: "Group"}) { nodes { name } } }',  # input objects
    ):
        for _ in range(2):
            statement_counter.reset()
            fast, slow = await post(compiled, tokens, principal, query), await post(full, tokens, principal, query)
            assert fast == slow
            assert statement_counter.count >= 2  # the tenant binding, then the reads: not one JSON statement
        assert [read for key, read in sqljson._cache.items() if key[0] == query] == [None]


async def test_bad_arguments_get_the_full_executors_error(db: AsyncSession, two_clients, backend: str) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    query = "{ sessions(first: 500) { nodes { id } } }"
    fast = await post(compiled, tokens, principal_for(organisation), query)
    assert fast == await post(full, tokens, principal_for(organisation), query)
    assert fast["errors"][0]["extensions"]["code"] == "INVALID"


async def test_evaluators_are_not_compiled(db: AsyncSession, two_clients, backend: str) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, _ = two_clients
    organisation = await seed(db)
    project = await make_project(db, organisation)
    evaluator = evaluator_for(organisation, project, scopes=frozenset({"programme:read"}))
    await post(compiled, tokens, evaluator, "{ regions { nodes { name } } }")
    assert not [key for key in sqljson._cache if evaluator in key]


async def test_the_statement_binds_its_own_tenant_for_row_level_security(
    connection: AsyncConnection, db: AsyncSession, backend: str
) -> None:
    org_a, org_b = await make_organisation(db), await make_organisation(db)
    for organisation in (org_a, org_a, org_b):
        await make_region(db, organisation)
    await db.commit()
    await become_unprivileged_role(connection, "SELECT ON regions")
    await connection.execute(sa.text(f"SELECT set_config('{SETTING}', '', true)"))  # nothing bound beforehand
    unfiltered = sa.select(sa.select(sa.func.count()).select_from(models.Region).scalar_subquery())
    for organisation, expected in ((org_a, 2), (org_b, 1)):
        read = compile_read(
            trusted(bound_read(unfiltered, principal_for(organisation)), reason="RLS alone"), connection.dialect
        )
        assert [tuple(row) for row in await fetch_compiled(connection, read)] == [(expected,)]
    await connection.execute(sa.text("RESET ROLE"))


async def test_the_service_reads_in_one_round_trip_outside_a_transaction(
    migrated_database: MigratedDatabase, backend: str
) -> None:
    """The app on its own engine (as served): committed rows, read on a pooled connection in autocommit."""
    engine = migrated_database.engine
    async with AsyncSession(engine, expire_on_commit=False) as db:
        organisation = await make_organisation(db)
        region = await make_region(db, organisation, name="Committed")
        await make_group(db, region, name="Committed group")
        await db.commit()
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    tokens = TokenBook()
    app = create_app(migrated_database.settings, engine=engine, authenticate=tokens.authenticate)
    try:
        sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body = await post(
                client, tokens, principal_for(organisation), "{ groups { nodes { name region { name } } } }"
            )
        assert body == {"data": {"groups": {"nodes": [{"name": "Committed group", "region": {"name": "Committed"}}]}}}
        assert statements == []  # nothing through a session: no BEGIN, no separate binding, no COMMIT
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
        async with engine.begin() as connection:
            await connection.execute(sa.delete(models.Organisation).where(models.Organisation.id == organisation.id))


async def test_a_failing_statement_is_answered_by_the_executor(
    db: AsyncSession, two_clients, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)

    async def cancelled(*_args: Any) -> Any:
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    monkeypatch.setattr(sqljson, "fetch_compiled", cancelled)
    query = "{ groups(first: 3) { nodes { name } } }"
    principal = principal_for(organisation)
    answer = await post(compiled, tokens, principal, query)
    assert answer == await post(full, tokens, principal, query)
    assert len(answer["data"]["groups"]["nodes"]) == 3
    assert "the compiled JSON read failed" in caplog.text

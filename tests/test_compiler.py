"""The read compiler (``schema/compiler/``): one statement builds the ``data`` JSON, on SQLite and PostgreSQL.

Each shape it knows must give exactly the executor's answer from one statement within the caller's reach;
values are bind parameters (one statement text per document and access shape); anything it does not know,
and every error case, is answered by the executor.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from strawberry.permission import BasePermission, PermissionExtension

from programme_api.app import create_app
from programme_api.domain import models
from programme_api.domain.access import compile_read, fetch_compiled, trusted
from programme_api.domain.models import Role
from programme_api.domain.principal import Principal
from programme_api.domain.tenancy import SETTING, bound_read
from programme_api.schema.compiler import route

from .api import TokenBook, without_extensions
from .conftest import MigratedDatabase
from .factories import (
    assign,
    audit_events,
    become_unprivileged_role,
    enrol,
    evaluator_for,
    gid,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
    make_response,
    make_session,
    principal_for,
    record,
    shipped_instrument_ids,
    weekly_schedule,
)
from .test_compiled_reads import seed

ONE_STATEMENT = {
    "benchmark_dashboard": """query RegionDashboard { regions { edges { node { name groups(first: 50) { edges {
        node { name facilitators { role facilitator { displayName } }
        sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins }
        } } } } } } } } } }""",
    "session_page": """{ sessions(first: 100) { edges { cursor node { id startsAt endsAt status dropinCount
        cancellationReason } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""",
    "references_and_children": """{ groups(last: 4) { totalCount __typename nodes { id name topic deliveryMode
        venue capacity status version region { id slug name } facilitators { __typename role
        facilitator { id displayName trainingCompletedOn backgroundCheckExpiresOn assignments { role group { name } } }
        } sessions(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { group { name }
        attendance { status recordedAt participant { reference } session { id } } } } } } }""",
    "aliases_fragments_directives": """query($skip: Boolean!, $n: Int) {
        a: groups(first: $n) { ...G } b: groups(first: 0) { nodes { name } pageInfo { hasNextPage startCursor } }
        participants(first: 3) { edges { __typename cursor node { ... on Participant { id reference version
          enrolments { status requestedAt group { name } participant { reference } } } } } }
        __typename }
        fragment G on GroupConnection { totalCount nodes { name region @skip(if: $skip) { name } } }""",
    "empty_lists": "{ facilitators(first: 2) { nodes { displayName assignments { role } } } }",
    "dated_filter": """{ compliant: facilitators(compliance: COMPLIANT, withinDays: 60) { totalCount nodes { displayName } }
        expiring: facilitators(compliance: CHECK_EXPIRING) { totalCount } }""",
    "filters": """query($f: GroupFilter, $s: SessionFilter) { groups(filter: $f) { totalCount nodes { name } }
        sessions(filter: $s, last: 3) { nodes { startsAt status } } }""",
    "computed_and_root_reference": """query($days: Int!) { organisation { id slug name timezone suppressionThreshold }
        groups { nodes { schedule { __typename frequency weekday weekOfMonth startTime durationMinutes anchorDate } } }
        facilitators { nodes { displayName complianceState soon: complianceState(withinDays: $days) } } }""",
    "duplicate_parents": """{ groups(first: 3) { pageInfo { hasNextPage } nodes { name region { slug
        groups(first: 2) { totalCount nodes { name } } } } } }""",
}
VARIABLES: dict[str, dict[str, Any]] = {
    "computed_and_root_reference": {"days": 300},
    "aliases_fragments_directives": {"skip": False, "n": 2},
    "filters": {"f": {"search": "0-", "statuses": ["ACTIVE"]}, "s": {"statuses": ["HELD", "CANCELLED"]}},
}


async def post(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return without_extensions(response.json())


@pytest.mark.parametrize("name", sorted(ONE_STATEMENT))
async def test_one_statement_gives_the_executors_answer(
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


async def test_timestamps_and_ids_render_as_the_serialisers_do(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    for micro in (0, 120000, 5, 999999):  # whole seconds, trailing zeros, a leading zero, all six digits
        await make_session(db, group, starts_at=datetime(2026, 3, 4, 19, 0, 7, micro, tzinfo=UTC))
    await make_session(db, group, starts_at=datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC))
    query = "{ sessions(first: 10) { edges { cursor node { id startsAt endsAt group { id } } } } }"
    principal = principal_for(organisation)
    fast, slow = await post(compiled, tokens, principal, query), await post(full, tokens, principal, query)
    assert fast == slow
    starts = [edge["node"]["startsAt"] for edge in fast["data"]["sessions"]["edges"]]
    assert starts[:2] == ["1999-12-31T23:59:59+00:00", "2026-03-04T19:00:07+00:00"]
    assert "2026-03-04T19:00:07.120000+00:00" in starts
    assert "2026-03-04T19:00:07.000005+00:00" in starts


async def test_a_region_bound_caller_sees_only_its_region_and_organisation(
    db: AsyncSession, two_clients, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
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
    assert body == await post(full, tokens, coordinator, query)
    text = str(body)
    assert "Group in Mine" in text
    assert "Theirs" not in text
    assert "Foreign" not in text
    assert body["data"]["groups"]["totalCount"] == 1
    assert body["data"]["facilitators"]["nodes"] == [
        {"displayName": "Shared", "assignments": [{"group": {"name": "Group in Mine"}}]}
    ]


DUPLICATE_PARENTS = {
    "groups → region → groups": """{ groups(first: 3) { pageInfo { hasNextPage } nodes { name region { slug
        groups(first: 2) { totalCount nodes { name } } } } } }""",
    "sessions → group → sessions": """{ sessions(first: 6) { nodes { group { name
        sessions(first: 2) { totalCount edges { cursor node { startsAt } } } } } } }""",
    "groups → facilitators → group → sessions": """{ groups(first: 4) { nodes { facilitators { facilitator {
        displayName } group { name sessions(last: 2) { pageInfo { startCursor endCursor } nodes { status } } } } } } }""",
}


@pytest.mark.parametrize("name", sorted(DUPLICATE_PARENTS))
async def test_a_parent_appearing_twice_gets_its_own_page_each_time(
    db: AsyncSession, two_clients, statement_counter, name: str
) -> None:  # type: ignore[no-untyped-def]
    """Regression: the same region (group) under two rows got one group (session) repeated in its nested list."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    statement_counter.reset()
    fast = await post(compiled, tokens, principal, DUPLICATE_PARENTS[name])
    assert statement_counter.count == 1
    assert fast == await post(full, tokens, principal, DUPLICATE_PARENTS[name])
    if name.startswith("groups → region"):
        for group in fast["data"]["groups"]["nodes"]:
            nested = [node["name"] for node in group["region"]["groups"]["nodes"]]
            assert len(set(nested)) == len(nested) == 2, nested


async def test_what_it_cannot_answer_falls_back_and_is_remembered(
    db: AsyncSession, two_clients, statement_counter, backend: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    for query in (
        "{ surveyInstruments(first: 2) { nodes { code definition } } }",  # a JSON document: read by its resolver
        "{ participants(first: 2) { nodes { preferredName } } }",  # personal data: an audited read
        "{ viewer { subject } }",  # only its resolver knows it
    ):
        for _ in range(2):
            statement_counter.reset()
            fast, slow = await post(compiled, tokens, principal, query), await post(full, tokens, principal, query)
            assert fast == slow
        assert [read for key, read in route._cache.items() if key[0] == query and key[-1] == backend] == [None]


ERROR_CASES = [
    ("{ sessions(first: 500) { nodes { id } } }", {}),
    ("{ groups(first: 101) { totalCount } }", {}),
    ("query($n: Int) { groups(first: 2, last: $n) { nodes { name } } }", {"n": 2}),
    ('{ groups(after: "nonsense") { totalCount nodes { name } } }', {}),
    ("query($c: String) { groups(first: 2, after: $c) { nodes { name } } }", {"c": "W10"}),  # an empty key
    ("{ facilitators(withinDays: 1000) { nodes { displayName } } }", {}),
    ("query($f: GroupFilter) { groups(filter: $f) { nodes { name } } }", {"f": {"regionIds": ["bm9wZQ"]}}),
]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
async def test_bad_arguments_get_the_executors_error(db: AsyncSession, two_clients, case: int) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    query, variables = ERROR_CASES[case]
    fast = await post(compiled, tokens, principal_for(organisation), query, **variables)
    assert fast == await post(full, tokens, principal_for(organisation), query, **variables)
    assert fast["errors"][0]["extensions"]["code"] in ("INVALID", "NOT_FOUND")


async def test_a_cursor_of_another_list_gets_the_executors_answer(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    sessions = await post(full, tokens, principal, "{ sessions(first: 1) { pageInfo { endCursor } } }")
    session_cursor = sessions["data"]["sessions"]["pageInfo"]["endCursor"]
    query = "query($c: String) { groups(first: 2, after: $c) { nodes { name } } }"
    fast = await post(compiled, tokens, principal, query, c=session_cursor)
    slow = await post(full, tokens, principal, query, c=session_cursor)
    for body in (fast, slow):  # each answer names its own request
        for error in body.get("errors", []):
            error["extensions"].pop("requestId", None)
    assert fast == slow


async def test_evaluators_are_not_compiled(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, _ = two_clients
    organisation = await seed(db)
    project = await make_project(db, organisation)
    evaluator = evaluator_for(organisation, project, scopes=frozenset({"programme:read"}))
    before = len(route._cache)
    await post(compiled, tokens, evaluator, "{ regions { nodes { name } } }")
    assert len(route._cache) == before


@pytest.mark.only_backend("postgresql")
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
        bound = trusted(bound_read(unfiltered, principal_for(organisation)), reason="row-level security alone")
        read = compile_read(bound, connection.dialect)
        assert str(organisation.id) not in read.sql  # the tenant is a parameter, not text
        assert [tuple(row) for row in await fetch_compiled(connection, read)] == [(expected,)]
    await connection.execute(sa.text("RESET ROLE"))


@pytest.mark.parametrize("statement_cache_size", [100, 0])
async def test_the_service_reads_in_one_round_trip_outside_a_transaction(
    migrated_database: MigratedDatabase, statement_cache_size: int
) -> None:
    """The app on its own engine (as served): committed rows, read on a pooled connection in autocommit, with
    asyncpg's prepared-statement cache on or off (PgBouncer in transaction mode)."""
    from programme_api.db import create_engine

    settings = migrated_database.settings.model_copy(update={"statement_cache_size": statement_cache_size})
    engine = create_engine(settings)
    sent: list[str] = []  # what the driver itself sent (asyncpg's own log sees its prepared path too)

    def log_driver(dbapi_connection: Any, _record: Any) -> None:
        if migrated_database.backend == "postgresql":
            dbapi_connection._connection.add_query_logger(lambda record: sent.append(record.query))

    sa.event.listen(engine.sync_engine, "connect", log_driver)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        organisation = await make_organisation(db)
        region = await make_region(db, organisation, name="Committed")
        for name in ("Committed group", "Second group"):
            await make_group(db, region, name=name)
        await db.commit()
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    tokens = TokenBook()
    app = create_app(settings, engine=engine, authenticate=tokens.authenticate)
    query = (
        "query($n: Int, $c: String) { groups(first: $n, after: $c) { edges { cursor node { name region { name } } } } }"
    )
    try:
        sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            principal = principal_for(organisation)
            first = await post(client, tokens, principal, query, n=1)
            edges = first["data"]["groups"]["edges"]
            assert [edge["node"] for edge in edges] == [{"name": "Committed group", "region": {"name": "Committed"}}]
            for _ in range(3):  # the same text again and again: one prepared statement when the cache is on
                sent.clear()
                second = await post(client, tokens, principal, query, n=5, c=edges[0]["cursor"])
                assert [edge["node"]["name"] for edge in second["data"]["groups"]["edges"]] == ["Second group"]
                if migrated_database.backend == "postgresql":
                    assert len(sent) == 1  # one statement per read, the tenant binding included
        assert statements == []  # nothing through a session: no BEGIN, no separate binding, no COMMIT
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
        async with engine.begin() as connection:
            await connection.execute(sa.delete(models.Organisation).where(models.Organisation.id == organisation.id))
        await engine.dispose()


async def test_statement_text_is_the_same_whatever_the_values(db: AsyncSession, two_clients, statement_counter) -> None:  # type: ignore[no-untyped-def]
    """Two requests with other page sizes, cursors and filter values send the same text; the values are bound."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    query = """query($n: Int, $c: String, $f: GroupFilter) { groups(first: $n, after: $c, filter: $f) {
        totalCount edges { cursor node { name sessions(last: $n) { nodes { startsAt } } } } } }"""
    start = await post(full, tokens, principal, "{ groups(first: 3) { edges { cursor node { name } } } }")
    edges = start["data"]["groups"]["edges"]
    texts = []
    for values in (
        {"n": 1, "c": edges[0]["cursor"], "f": {"search": "Group 0", "statuses": ["ACTIVE"]}},
        {"n": 3, "c": edges[2]["cursor"], "f": {"search": "Group 1", "statuses": ["PAUSED", "ACTIVE"]}},
    ):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, **values)
        (text,) = statement_counter.statements
        assert fast == await post(full, tokens, principal, query, **values)
        for value in (
            values["c"],
            values["f"]["search"],
            str(organisation.id),
            organisation.id.hex,
            edges[0]["node"]["name"],
        ):  # type: ignore[index]
            assert value not in text
        texts.append(text)
    assert texts[0] == texts[1]
    regions = list(
        (await db.execute(sa.select(models.Region).where(models.Region.organisation_id == organisation.id))).scalars()
    )
    bound_texts = []
    for reach in (regions[:1], regions[:2]):  # one region, then two: the list is one parameter
        coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=reach)
        statement_counter.reset()
        fast = await post(compiled, tokens, coordinator, query, n=2)
        (text,) = statement_counter.statements
        assert fast == await post(full, tokens, coordinator, query, n=2)
        bound_texts.append(text)
    assert bound_texts[0] == bound_texts[1]


async def test_a_failing_statement_is_answered_by_the_executor(
    db: AsyncSession, two_clients, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)

    async def cancelled(*_args: Any) -> Any:
        raise sa.exc.OperationalError("SELECT", {}, Exception("canceling statement due to statement timeout"))

    monkeypatch.setattr(route, "run", cancelled)
    query = "{ groups(first: 3) { nodes { name } } }"
    principal = principal_for(organisation)
    response = await compiled.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {tokens.issue(principal)}"}
    )
    assert response.status_code == 200
    assert without_extensions(response.json()) == await post(full, tokens, principal, query)
    assert f"the compiled read failed (request {response.headers['x-request-id']})" in caplog.text


async def test_an_exception_inside_the_compiler_gives_the_executors_answer(
    db: AsyncSession, two_clients, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A bug in the compiler is logged with the request id; the client gets the executor's normal answer."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the compiler")

    monkeypatch.setattr(route.Builder, "connection", broken)
    monkeypatch.setattr(route, "_cache", type(route._cache)())
    query = "{ regions { nodes { name } } }"
    principal = principal_for(organisation)
    with caplog.at_level(logging.ERROR):
        response = await compiled.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {tokens.issue(principal)}"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert without_extensions(response.json()) == await post(full, tokens, principal, query)
    assert f"(request {response.headers['x-request-id']})" in caplog.text
    assert "a bug in the compiler" in caplog.text


class Refused(BasePermission):
    message = "refused by a permission class"

    async def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


async def test_a_permission_class_on_a_field_is_honoured_on_the_compiled_path(
    db: AsyncSession, two_clients, monkeypatch: pytest.MonkeyPatch, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    """A permission class added to a field the compiler knows: the compiled path must not skip it."""
    from programme_api import schema as schema_package
    from programme_api.web import graphql as web_graphql

    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    query = "{ groups(first: 2) { totalCount nodes { id version } } }"
    assert "errors" not in await post(compiled, tokens, principal, query)
    (version,) = [f for f in schema_package.schema.get_type_by_name("Group").fields if f.python_name == "version"]  # type: ignore[union-attr]
    monkeypatch.setattr(version, "permission_classes", [Refused])
    monkeypatch.setattr(version, "extensions", [PermissionExtension([Refused()], use_directives=False)])
    guarded = strawberry.Schema(
        query=schema_package.schema.query,
        mutation=schema_package.schema.mutation,
        types=[schema_package.schema.get_type_by_name("Group").origin],  # type: ignore[union-attr]
    )
    monkeypatch.setattr(web_graphql, "schema", guarded)
    statement_counter.reset()
    fast = await post(compiled, tokens, principal, query)
    slow = await post(full, tokens, principal, query)
    assert fast == slow
    assert fast["errors"][0]["message"] == "refused by a permission class"
    assert statement_counter.count > 1  # answered by the executor, not by one compiled statement


async def test_compliance_states_are_worked_out_as_the_resolver_does(
    db: AsyncSession, two_clients, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    today = datetime.now(UTC).date()
    for name, trained, expires in (
        ("Expired", today, today - timedelta(days=1)),
        ("No check", today, None),
        ("Untrained", None, today + timedelta(days=200)),
        ("Expiring", today, today + timedelta(days=10)),
        ("Today", today, today),
        ("Fine", today, today + timedelta(days=200)),
    ):
        await make_facilitator(db, organisation, display_name=name, training_completed_on=trained,
                               background_check_expires_on=expires)  # fmt: skip
    query = """query($days: Int!) { facilitators { nodes { displayName complianceState
        wide: complianceState(withinDays: $days) } } }"""
    principal = principal_for(organisation)
    for days in (0, 250):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, days=days)
        assert statement_counter.count == 1
        assert fast == await post(full, tokens, principal, query, days=days)
    states = {node["displayName"]: node["complianceState"] for node in fast["data"]["facilitators"]["nodes"]}
    assert states == {
        "Expired": "CHECK_EXPIRED",
        "No check": "CHECK_EXPIRED",
        "Untrained": "TRAINING_MISSING",
        "Expiring": "CHECK_EXPIRING",
        "Today": "CHECK_EXPIRING",
        "Fine": "COMPLIANT",
    }


async def test_schedules_render_as_the_resolver_gives_them(db: AsyncSession, two_clients, statement_counter) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_group(db, region, name="A unscheduled")
    await make_group(db, region, name="B weekly", **weekly_schedule(weekday=4, start=time(7, 5, 3)))
    await make_group(db, region, name="C odd time", **weekly_schedule(start=time(18, 30, 0, 250)))
    query = (
        "{ groups { nodes { name schedule { frequency weekday weekOfMonth startTime durationMinutes anchorDate } } } }"
    )
    principal = principal_for(organisation)
    statement_counter.reset()
    fast = await post(compiled, tokens, principal, query)
    assert statement_counter.count == 1
    assert fast == await post(full, tokens, principal, query)
    schedules = [node["schedule"] for node in fast["data"]["groups"]["nodes"]]
    assert schedules[0] is None
    assert [schedule["startTime"] for schedule in schedules[1:]] == ["07:05:03", "18:30:00.000250"]


async def test_node_by_id_is_compiled_for_row_types(db: AsyncSession, two_clients, statement_counter) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation, other = await seed(db), await make_organisation(db)
    foreign = await make_group(db, await make_region(db, other), name="Foreign")
    principal = principal_for(organisation)
    query = """query($id: ID!) { node(id: $id) { __typename id ... on Group { name region { name } }
        ... on Region { slug groups(first: 1) { nodes { name } } } ... on Participant { reference } } }"""
    found = await post(full, tokens, principal, "{ groups(first: 1) { nodes { id region { id } } } }")
    group = found["data"]["groups"]["nodes"][0]
    texts = []
    for node_id in (group["id"], group["region"]["id"], gid(foreign)):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, id=node_id)
        (text,) = statement_counter.statements
        texts.append(text)
        assert fast == await post(full, tokens, principal, query, id=node_id)
    assert len(set(texts)) == 1
    assert fast == {"data": {"node": None}}  # another tenant's group: as if it did not exist
    for odd in ("not-an-id", gid(foreign).rstrip("A") + "x"):  # answered by the executor, the same way
        assert await post(compiled, tokens, principal, query, id=odd) == await post(
            full, tokens, principal, query, id=odd
        )


async def test_health_data_by_node_id_is_read_and_audited_by_the_executor(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    response = await make_response(db, await make_participant(db, region), group)
    principal = principal_for(organisation)
    query = "query($id: ID!) { node(id: $id) { __typename id } }"
    before = len(await audit_events(db))
    fast = await post(compiled, tokens, principal, query, id=gid(response))
    assert len(await audit_events(db)) == before + 1  # the health read was audited, as by the executor
    assert fast == await post(full, tokens, principal, query, id=gid(response))
    assert fast["data"]["node"] == {"__typename": "SurveyResponse", "id": gid(response)}


def test_the_field_policy_declares_every_field_of_the_row_types() -> None:
    """The table names only real fields, declares every field of the row types (a new field must be declared
    before the compiler reads it), and reads each list or reference under its model's own access scope."""
    from programme_api.domain.access import RULES
    from programme_api.schema import schema
    from programme_api.schema.compiler.policy import FIELDS, ROW_TYPES, Read

    graphql = schema._schema
    for type_name, field_name in FIELDS:
        assert field_name in graphql.get_type(type_name).fields, (type_name, field_name)  # type: ignore[union-attr]
    for type_name in ROW_TYPES:
        for field_name in graphql.get_type(type_name).fields:  # type: ignore[union-attr]
            assert (type_name, field_name) in FIELDS, f"{type_name}.{field_name} is not declared"
    for policy in FIELDS.values():
        model = getattr(policy.spec, "model", None)
        if model is not None:
            assert policy.scope == RULES[model][0]
        if policy.audited:
            assert policy.read in (Read.RESOLVER, Read.COMPUTED)


def test_every_audited_field_is_left_to_the_resolvers_that_record_it() -> None:
    """The audited fields are declared once (``schema/audited.py``, whose resolvers record each read); the
    compiler answers none of them, or a read would leave no audit event."""
    from programme_api.schema import schema
    from programme_api.schema.audited import is_audited
    from programme_api.schema.compiler.policy import FIELDS, Read

    for type_name, graphql_type in schema._schema.type_map.items():
        for field_name in getattr(graphql_type, "fields", {}) if not type_name.startswith("__") else {}:
            if not is_audited(type_name, field_name):
                continue
            policy = FIELDS.get((type_name, field_name))
            assert policy is None or (policy.audited and policy.read is Read.RESOLVER), (type_name, field_name)


async def test_a_filter_value_that_changes_the_statement_is_answered_by_the_executor(
    db: AsyncSession, two_clients
) -> None:  # type: ignore[no-untyped-def]
    """An empty search adds no condition: the statement compiled for a search does not fit it."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    query = "query($f: GroupFilter) { groups(filter: $f) { totalCount nodes { name } } }"
    for search in ("Group 1", "", "1-2"):
        fast = await post(compiled, tokens, principal, query, f={"search": search})
        assert fast == await post(full, tokens, principal, query, f={"search": search})


async def test_consecutive_absences_are_counted_as_the_resolver_counts_them(
    db: AsyncSession, two_clients, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    never, absent = await make_participant(db, region), await make_participant(db, region)
    await make_participant(db, region)  # nothing recorded at all
    for week, status in enumerate(["PRESENT", "EXCUSED", "UNEXCUSED", "PRESENT", "UNEXCUSED", "EXCUSED"]):
        session = await make_session(db, group, starts_at=datetime(2026, 2, 1 + week, 18, tzinfo=UTC),
                                     status=models.SessionStatus.HELD)  # fmt: skip
        await record(db, session, absent, models.AttendanceStatus[status])
        await record(db, session, never, models.AttendanceStatus.UNEXCUSED)
    cancelled = await make_session(db, group, status=models.SessionStatus.CANCELLED, cancellation_reason="Snow")
    await record(db, cancelled, absent, models.AttendanceStatus.UNEXCUSED)
    query = "{ participants(first: 100) { nodes { reference consecutiveAbsences } } }"
    for principal in (
        principal_for(organisation),
        principal_for(organisation, role=Role.COORDINATOR, regions=[region]),
    ):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query)
        assert statement_counter.count == 1
        assert fast == await post(full, tokens, principal, query)
    counts = {node["reference"]: node["consecutiveAbsences"] for node in fast["data"]["participants"]["nodes"]}
    assert sorted(counts.values()) == [0, 2, 6]


def _reads_by_path(metrics: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("programme_api_graphql_reads_total{"):
            labels, _, value = line.rpartition(" ")
            found[labels.split('path="')[1].split('"')[0]] = float(value)
    return found


async def test_metrics_count_reads_by_the_path_that_answered_them(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    """Operators (and the benchmark) see what share of queries the compiler answers."""
    tokens, compiled, _full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    before = _reads_by_path((await compiled.get("/metrics")).text)
    await post(compiled, tokens, principal, "{ regions { nodes { name } } }")
    await post(compiled, tokens, principal, "{ viewer { subject } }")  # the resolvers answer the viewer
    after = _reads_by_path((await compiled.get("/metrics")).text)
    assert after.get("compiled", 0) - before.get("compiled", 0) == 1
    assert after.get("executor", 0) - before.get("executor", 0) == 1


@pytest.mark.parametrize(
    "query",
    [
        "{ participants { pageInfo { hasPreviousPage } totalCount } }",
        "{ groups { pageInfo { hasPreviousPage __typename } } }",
        "{ regions(first: 1) { nodes { groups { pageInfo { hasPreviousPage } } } } }",
        "{ sessions(first: 1) { pageInfo { hasNextPage } } }",
        "{ regions { edges { node { groups(first: 1) { pageInfo { hasNextPage hasPreviousPage } } } } } }",
        "{ sessions(last: 1) { pageInfo { hasPreviousPage hasNextPage } } }",
    ],
)
async def test_page_info_of_constants_alone_is_one_object(
    db: AsyncSession, two_clients, caplog: pytest.LogCaptureFixture, query: str
) -> None:  # type: ignore[no-untyped-def]
    """Flags known without looking at the rows (no cursor given: no previous page) still make one object per
    connection, however many rows the page holds: the compiled statement answers, it does not fail."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    with caplog.at_level(logging.ERROR, logger="programme_api.schema.compiler.route"):
        fast = await post(compiled, tokens, principal, query)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    slow = await post(full, tokens, principal, query)
    assert "errors" not in slow, slow
    assert fast == slow


async def test_drop_ins_alone_of_a_session_without_marks(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    """``attendanceCounts { dropins }`` needs no marks: a session nobody was marked at still has its count."""
    tokens, compiled, full = two_clients
    organisation = await make_organisation(db)
    await make_session(db, await make_group(db, await make_region(db, organisation)), dropin_count=3)
    query = "{ sessions { nodes { attendanceCounts { dropins } } } }"
    principal = principal_for(organisation)
    fast, slow = await post(compiled, tokens, principal, query), await post(full, tokens, principal, query)
    assert slow == {"data": {"sessions": {"nodes": [{"attendanceCounts": {"dropins": 3}}]}}}
    assert fast == slow


async def test_a_cursor_of_another_list_is_refused_when_only_the_count_is_asked(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    """The cursor is checked whatever is selected: ``totalCount`` alone reads no row of the page."""
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    principal = principal_for(organisation)
    first = await post(full, tokens, principal, "{ regions(first: 1) { edges { cursor } } }")
    cursor = first["data"]["regions"]["edges"][0]["cursor"]
    query = "query($c: String) { sessions(after: $c) { totalCount } }"
    slow = await post(full, tokens, principal, query, c=cursor)
    assert slow["errors"][0]["extensions"]["code"] == "INVALID", slow
    assert await post(compiled, tokens, principal, query, c=cursor) == slow


async def test_survey_instruments_are_compiled_for_every_kind_of_caller(
    db: AsyncSession, two_clients, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    """The instrument list (shipped ones and the caller's organisation's own, never another's) and
    ``node(id:)`` of an instrument: one statement with the executor's answer, for an organisation's admin, a
    region-bound client and a facilitator; an evaluator gets the executor's refusal on both paths."""
    tokens, compiled, full = two_clients
    organisation, other = await seed(db), await make_organisation(db)
    await shipped_instrument_ids(db)
    for owner, code in ((organisation, "custom_mine"), (other, "custom_theirs")):
        for version in (1, 2):
            db.add(models.SurveyInstrument(organisation_id=owner.id, code=code, version=version, name=code.title(),
                                           definition={"items": []}, wording_licensed=version == 2))  # fmt: skip
    await db.flush()
    mine = sa.select(models.Region).where(models.Region.organisation_id == organisation.id)
    region = (await db.execute(mine)).scalars().first()
    facilitator = await make_facilitator(db, organisation)
    callers = {
        "admin": principal_for(organisation),
        "region-bound client": principal_for(organisation, role=None, regions=[region], scopes={"programme:read"}),
        "facilitator": principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator),
        "evaluator": evaluator_for(organisation, await make_project(db, organisation)),
    }
    page = """query($after: String) { surveyInstruments(first: 3, after: $after) { totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { __typename id code
        version name shipped wordingLicensed } } } }"""
    by_id = """query($id: ID!) { node(id: $id) { __typename id ... on SurveyInstrument { code version shipped } } }"""
    for who, principal in callers.items():
        after, codes = None, []
        while True:
            statement_counter.reset()
            fast = await post(compiled, tokens, principal, page, after=after)
            sent = statement_counter.count
            assert fast == await post(full, tokens, principal, page, after=after), who
            if who == "evaluator":  # evaluators are the executor's, and need programme:read to list instruments
                assert fast["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE", fast
                break
            assert sent == 1, f"the instruments page of the {who} was not one statement"
            connection = fast["data"]["surveyInstruments"]
            codes += [edge["node"]["code"] for edge in connection["edges"]]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        if who == "evaluator":
            continue
        assert {"custom_mine", "phq9"} <= set(codes), (who, codes)
        assert "custom_theirs" not in codes, (who, codes)
        node_id = fast["data"]["surveyInstruments"]["edges"][0]["node"]["id"]
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, by_id, id=node_id)
        assert statement_counter.count == 1, f"node(id:) of an instrument for the {who} was not one statement"
        assert fast == await post(full, tokens, principal, by_id, id=node_id)
        assert fast["data"]["node"]["__typename"] == "SurveyInstrument"

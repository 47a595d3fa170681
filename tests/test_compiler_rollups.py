"""The roll-ups and a participant's attendance per enrolment, read by the compiler in the one statement.

``Enrolment.attendance``, ``Group.attendanceRate(from, to)`` and ``Region.totals(from, to)`` give exactly
the resolvers' answer from one statement, for an organisation-wide caller, a region-bound coordinator and a
facilitator, on both databases; the period is a parameter (one statement text whatever the dates); the rate
rounds halves up on integers, so that Python and both databases agree to the last digit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain import programme
from programme_api.domain.models import AttendanceStatus, Role, SessionStatus
from programme_api.domain.principal import Principal

from .api import TokenBook
from .factories import (
    assign,
    enrol,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
    record,
)

SHAPES = {
    "participants_enrolments_attendance": """{ participants(first: 50) { nodes { reference enrolments {
        status group { name } attendance { id status recordedAt session { startsAt status } } } } } }""",
    "attendance_rate": """query($from: DateTime, $to: DateTime) { regions { nodes { name groups(first: 50) {
        nodes { name attendanceRate rate: attendanceRate(from: $from, to: $to) } } } } }""",
    "region_totals": """query($from: DateTime, $to: DateTime) { regions { nodes { name totals { __typename
        activeGroups sessionsHeld uniqueAttendees } period: totals(from: $from, to: $to) { uniqueAttendees
        sessionsHeld } } } }""",
    "everything": """query($from: DateTime) { groups { nodes { name attendanceRate(from: $from) region {
        totals(from: $from) { activeGroups sessionsHeld uniqueAttendees } } } }
        participants { nodes { consecutiveAbsences enrolments { attendance { status } } } } }""",
}
PERIODS = (
    {},
    {"from": "2020-01-01T00:00:00+00:00", "to": "2030-01-01T00:00:00+00:00"},
    {"from": (datetime.now(UTC) - timedelta(days=10)).isoformat()},
)


async def seed(db: AsyncSession) -> Any:
    """Two regions; groups with sessions spread over the last weeks; a participant enrolled in two groups
    (their marks belong to one enrolment each); a paused group; a cancelled session."""
    from programme_api.domain.models import GroupStatus

    organisation = await make_organisation(db)
    now = datetime.now(UTC).replace(microsecond=0)
    facilitator = await make_facilitator(db, organisation)
    regions = []
    for region_number in range(2):
        region = await make_region(db, organisation, name=f"Region {region_number}")
        regions.append(region)
        shared = await make_participant(db, region)
        for group_number in range(3):
            status = GroupStatus.PAUSED if group_number == 2 else GroupStatus.ACTIVE
            group = await make_group(db, region, name=f"Group {region_number}-{group_number}", status=status)
            if region_number == 0:
                await assign(db, group, facilitator)
            people = [shared, *[await make_participant(db, region) for _ in range(2 + group_number)]]
            for person in people:
                await enrol(db, person, group)
            for week in range(5):
                held = SessionStatus.CANCELLED if week == 4 - group_number else SessionStatus.HELD
                session = await make_session(
                    db,
                    group,
                    starts_at=now - timedelta(days=7 * week + group_number),
                    status=held,
                    cancellation_reason=None if held is SessionStatus.HELD else "Snow",
                )
                if held is SessionStatus.HELD:
                    for index, person in enumerate(people):
                        marks = [AttendanceStatus.PRESENT, AttendanceStatus.EXCUSED, AttendanceStatus.UNEXCUSED]
                        await record(db, session, person, marks[(index * week + group_number) % 3])
    return organisation, facilitator, regions


async def post(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, query: str, variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def principals(organisation: Any, facilitator: Any, regions: list[Any]) -> list[Principal]:
    return [
        principal_for(organisation),
        principal_for(organisation, role=Role.COORDINATOR, regions=regions[:1]),
        principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator),
    ]


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_one_statement_gives_the_resolvers_answer(
    db: AsyncSession, two_clients, statement_counter, name: str
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation, facilitator, regions = await seed(db)
    for principal in principals(organisation, facilitator, regions):
        for period in PERIODS:
            variables = {key: value for key, value in period.items() if f"${key}" in SHAPES[name]}
            statement_counter.reset()
            fast = await post(compiled, tokens, principal, SHAPES[name], variables)
            assert statement_counter.count == 1, f"{name} was not answered by one statement"
            slow = await post(full, tokens, principal, SHAPES[name], variables)
            assert "errors" not in slow, slow
            assert fast == slow
    assert (
        any(
            node["enrolments"] and any(e["attendance"] for e in node["enrolments"])
            for node in slow["data"]["participants"]["nodes"]
        )
        if "participants" in slow["data"]
        else True
    )


async def test_the_statement_text_does_not_change_with_the_period(
    db: AsyncSession, two_clients, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, _full = two_clients
    organisation, _facilitator, _regions = await seed(db)
    texts = set()
    for period in PERIODS[1:]:
        statement_counter.reset()
        await post(compiled, tokens, principal_for(organisation), SHAPES["region_totals"], period)
        assert statement_counter.count == 1
        texts.add(statement_counter.statements[-1])
    assert len(texts) == 1


async def test_a_participant_in_two_groups_has_each_groups_marks_under_each_enrolment(
    db: AsyncSession, two_clients
) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation, _facilitator, _regions = await seed(db)
    query = SHAPES["participants_enrolments_attendance"]
    fast = await post(compiled, tokens, principal_for(organisation), query, {})
    assert fast == await post(full, tokens, principal_for(organisation), query, {})
    shared = [node for node in fast["data"]["participants"]["nodes"] if len(node["enrolments"]) == 3]
    assert len(shared) == 2  # one per region, enrolled in its three groups
    for node in shared:
        counts = [len(enrolment["attendance"]) for enrolment in node["enrolments"]]
        assert counts == [4, 4, 4], counts


RATE_CASES = [(0, 0), (0, 3), (3, 3), (2, 3), (1, 7), (1, 32), (3, 160), (25, 32), (17, 32), (1, 20000), (2, 20000),
              (625, 20000 * 2), (1875, 20000 * 2), (999_999, 1_000_000), (3, 2**20), (123_457, 800_000)]  # fmt: skip


async def test_the_rate_is_rounded_as_python_rounds_it_in_both_databases(connection) -> None:  # type: ignore[no-untyped-def]
    """Halves included (1/32 = 0.03125 goes to 0.0312, 3/160 = 0.01875 to 0.0187, as the nearest floats lie):
    the statement's rate is the resolver's float, digit for digit."""
    import sqlalchemy as sa

    from programme_api.schema.compiler.build import rate_of

    cases = RATE_CASES + [(2 * k + 1, 20000) for k in range(0, 10000, 37)]
    for present, recorded in cases:
        value = rate_of(sa.literal(present, sa.BigInteger), sa.literal(recorded, sa.BigInteger))
        found = (await connection.execute(sa.select(value))).scalar_one()
        assert found == programme.attendance_rate(present, recorded), (present, recorded, found)


DASHBOARDS = {
    "dashboard": """query RegionDashboard { regions { edges { node { name groups(first: 50) { edges {
        node { name facilitators { role facilitator { displayName } }
        sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins }
        } } } } } } } } } }""",
    "dashboard_with_page_info": """query RegionDashboard { regions { pageInfo { hasNextPage endCursor } edges {
        node { name groups(first: 50) { pageInfo { hasNextPage endCursor } edges { node { name
        facilitators { role facilitator { displayName } } sessions(last: 20) { pageInfo { hasPreviousPage
        startCursor } edges { node { startsAt status attendanceCounts { present excused unexcused dropins }
        } } } } } } } } } }""",
}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
async def test_the_region_dashboard_is_one_statement_on_both_databases(
    db: AsyncSession, two_clients, statement_counter, name: str
) -> None:  # type: ignore[no-untyped-def]
    """The deepest shape of the benchmark, for every kind of caller: compiled on SQLite too (whose parser
    before 3.46 has a fixed stack: the statement is kept shallow enough for it)."""
    tokens, compiled, full = two_clients
    organisation, facilitator, regions = await seed(db)
    for principal in principals(organisation, facilitator, regions):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, DASHBOARDS[name], {})
        assert statement_counter.count == 1, f"{name} was not answered by one statement"
        slow = await post(full, tokens, principal, DASHBOARDS[name], {})
        assert "errors" not in slow, slow
        assert fast == slow
        assert slow["data"]["regions"]["edges"]


async def test_consent_histories_are_read_by_the_statement(db: AsyncSession, two_clients, statement_counter) -> None:  # type: ignore[no-untyped-def]
    """``Participant.consents``: every purpose, oldest first, withdrawals included (``inForce`` false)."""
    from programme_api.domain.models import ConsentPurpose

    from .factories import make_consent

    tokens, compiled, full = two_clients
    organisation, facilitator, regions = await seed(db)
    given = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    for number, region in enumerate(regions):
        person = await make_participant(db, region)
        await make_consent(db, person, given_at=given, withdrawn_at=given + timedelta(days=3, microseconds=5))
        await make_consent(db, person, purpose=ConsentPurpose.CONTACT, given_at=given)  # the same instant
        await make_consent(db, person, purpose=ConsentPurpose.SERVICE_DELIVERY, given_at=given - timedelta(days=number))
    query = """{ participants(last: 3) { nodes { reference consents { __typename id purpose formVersion givenAt
        withdrawnAt inForce } } } }"""
    answers = []
    for principal in principals(organisation, facilitator, regions):
        statement_counter.reset()
        fast = await post(compiled, tokens, principal, query, {})
        assert statement_counter.count == 1
        slow = await post(full, tokens, principal, query, {})
        assert "errors" not in slow, slow
        assert fast == slow
        answers.append(slow)
    histories = [node["consents"] for node in answers[0]["data"]["participants"]["nodes"]]
    assert any(len(history) == 3 and [c["inForce"] for c in history].count(False) == 1 for history in histories)


# ---- plans: the roll-ups read the asked groups' rows, whatever plan PostgreSQL caches -------------------------

RATES = """query Rates($region: ID!, $from: DateTime!, $to: DateTime!) {
  groups(first: 50, filter: {regionIds: [$region]}) { nodes { name attendanceRate(from: $from, to: $to) } }
}"""


def _literal(value: Any) -> str:
    """A parameter's value as SQL text for ``EXECUTE`` (the test's own values: IDs, instants, numbers, names)."""
    if isinstance(value, list | tuple):
        return "'{" + ",".join(str(item) for item in value) + "}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


async def _explain_prepared(connection: Any, statement: str, parameters: Any, plan_cache_mode: str) -> Any:
    """``EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE`` of the statement prepared as the service's role (row-level
    security applies), with the plan cache forced to ``plan_cache_mode``."""
    from .conftest import APP_ROLE

    driver = (await connection.get_raw_connection()).driver_connection
    types = [parameter.name for parameter in (await driver.prepare(statement)).get_parameters()]
    await driver.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}; SET LOCAL jit = off; SET ROLE {APP_ROLE}")
    try:
        await driver.execute(f"PREPARE rollup_plan ({', '.join(types)}) AS {statement}")
        values = ", ".join(_literal(value) for value in parameters)
        for _ in range(6):  # past the executions after which PostgreSQL may settle on its generic plan
            await driver.execute(f"EXECUTE rollup_plan ({values})")
        explained = await driver.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE rollup_plan ({values})")
        await driver.execute("DEALLOCATE rollup_plan")
    finally:
        await driver.execute("RESET ROLE")
    plans = json.loads(explained) if isinstance(explained, str) else explained  # decoded when a JSON codec is set
    return plans[0]["Plan"]


def _rows_read(node: dict[str, Any], table: str, skip_alias: str = "") -> int:
    """Rows a plan read from ``table`` (kept and filtered out, over every loop), leaving out scans named
    ``skip_alias`` (the row-level security policy's own subquery)."""
    total = 0
    if node.get("Relation Name") == table and node.get("Alias") != skip_alias:
        total += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
    return total + sum(_rows_read(child, table, skip_alias) for child in node.get("Plans", []))


def _scans(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = [(node["Node Type"], node.get("Relation Name", ""), node.get("Alias", ""))]
    return found + [scan for child in node.get("Plans", []) for scan in _scans(child)]


@pytest.mark.parametrize("plan_cache_mode", ["force_generic_plan", "force_custom_plan"])
async def test_attendance_rate_reads_only_the_asked_groups_sessions_and_marks(
    db: AsyncSession, two_clients, connection, backend: str, plan_cache_mode: str
) -> None:  # type: ignore[no-untyped-def]
    """A region's groups' rates from one statement that reads those groups' sessions in the period and their
    marks, through indexes, under PostgreSQL's generic plan (the dates and region unknown) as under a custom
    one, as the service's role (row-level security on): never the organisation's whole history."""
    from programme_api.schema.relay import to_global_id

    from .conftest import Capture
    from .test_query_plans import START, build_history, explain_sqlite, sqlite_problems

    if backend == "sqlite" and plan_cache_mode == "force_custom_plan":
        pytest.skip("SQLite has no plan cache")
    tokens, compiled, full = two_clients
    organisation, asked, region = await build_history(db)
    caller = principal_for(organisation, role=Role.COORDINATOR, regions=[region])
    variables = {"region": str(to_global_id("Region", region.id)), "from": (START - timedelta(weeks=8)).isoformat(),
                 "to": (START + timedelta(days=1)).isoformat()}  # fmt: skip
    capture = Capture()
    sa.event.listen(connection.sync_connection, "before_cursor_execute", capture)
    try:
        fast = await post(compiled, tokens, caller, RATES, variables)
    finally:
        sa.event.remove(connection.sync_connection, "before_cursor_execute", capture)
    assert fast == await post(full, tokens, caller, RATES, variables)
    assert [node["attendanceRate"] for node in fast["data"]["groups"]["nodes"]] == [1.0, 1.0]
    [(statement, parameters)] = capture.sent
    if backend == "sqlite":
        assert sqlite_problems(await explain_sqlite(connection, statement, parameters)) == []
        return
    plan = await _explain_prepared(connection, statement, parameters, plan_cache_mode)
    # The row-level security policy's own list of the caller's regions' sessions (alias ``s``) is worked out
    # once per statement, however PostgreSQL reads it; the statement's own reads are what is checked here.
    scans = [(kind, table) for kind, table, alias in _scans(plan) if alias != "s"]
    assert ("Seq Scan", "group_sessions") not in scans, scans
    assert ("Seq Scan", "attendance") not in scans, scans
    asked_sessions = len(asked) * 9  # nine weekly sessions in the period, five marks each
    assert _rows_read(plan, "attendance") <= asked_sessions * 5, plan
    assert _rows_read(plan, "group_sessions", skip_alias="s") <= asked_sessions + len(asked), plan

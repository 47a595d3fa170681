"""The roll-ups and a participant's attendance per enrolment, read by the compiler in the one statement.

``Enrolment.attendance``, ``Group.attendanceRate(from, to)`` and ``Region.totals(from, to)`` give exactly
the resolvers' answer from one statement, for an organisation-wide caller, a region-bound coordinator and a
facilitator, on both databases; the period is a parameter (one statement text whatever the dates); the rate
rounds halves up on integers, so that Python and both databases agree to the last digit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
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

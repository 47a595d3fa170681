"""The compiled read path answers exactly what the full executor answers, and falls back when it must."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AttendanceStatus, Role, SessionStatus
from programme_api.domain.principal import Principal

from .api import TokenBook, without_throttle_status
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
    weekly_schedule,
)

QUERIES = {
    "dashboard": """query Dashboard { regions { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
        id name __typename groups(first: 50) { totalCount edges { node { id name topic deliveryMode capacity status
        schedule { frequency weekday startTime durationMinutes }
        facilitators { role facilitator { displayName complianceState } group { name } }
        sessions(last: 20) { edges { node { startsAt endsAt status cancellationReason
          attendanceCounts { present excused unexcused dropins } } } } } } } } } } }""",
    "session_page": """{ sessions(first: 100) { edges { node { id startsAt endsAt status dropinCount
        cancellationReason } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""",
    "fragments_aliases_directives": """query($skip: Boolean!, $n: Int) {
        first: groups(first: $n) { ...G }
        last: groups(last: 1) { nodes { name region @skip(if: $skip) { name } } }
        sessions(last: 3) { edges { node { ... on GroupSession { status group { name region { slug } } } } } } }
        fragment G on GroupConnection { totalCount nodes { name ...on Group { version } } }""",
    "rollups": """{ regions { nodes { totals { activeGroups sessionsHeld uniqueAttendees }
        groups { nodes { attendanceRate } } } }
        participants { edges { node { reference preferredName consecutiveAbsences
          enrolments { status group { name } } } } }
        facilitators(compliance: COMPLIANT) { totalCount nodes { displayName assignments { role group { name } } } } }""",
    "attendance": """{ sessions(first: 5) { nodes { attendance { status participant { reference } session { status } } } } }""",
}
VARIABLES: dict[str, dict[str, Any]] = {"fragments_aliases_directives": {"skip": False, "n": 2}}


async def seed(db: AsyncSession) -> Any:
    organisation = await make_organisation(db)
    for region_number in range(2):
        region = await make_region(db, organisation, name=f"Region {region_number}")
        facilitator = await make_facilitator(db, organisation)
        for group_number in range(3):
            group = await make_group(db, region, name=f"Group {region_number}-{group_number}", **weekly_schedule())
            await assign(db, group, facilitator)
            people = [await make_participant(db, region) for _ in range(3)]
            for person in people:
                await enrol(db, person, group)
            for week in range(4):
                status = SessionStatus.CANCELLED if week == 3 else SessionStatus.HELD
                session = await make_session(
                    db, group, status=status, cancellation_reason="Snow" if week == 3 else None
                )
                if status is SessionStatus.HELD:
                    for index, person in enumerate(people):
                        marks = [AttendanceStatus.PRESENT, AttendanceStatus.EXCUSED, AttendanceStatus.UNEXCUSED]
                        await record(db, session, person, marks[(index + week) % 3])
    return organisation


async def answer(client: httpx.AsyncClient, tokens: TokenBook, principal: Principal, name: str) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": QUERIES[name], "variables": VARIABLES.get(name, {})},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200
    return without_throttle_status(response.json())


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_compiled_and_full_executor_agree(db: AsyncSession, two_clients, name: str) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    for principal in (principal_for(organisation), principal_for(organisation, role=Role.COORDINATOR)):
        fast, slow = await answer(compiled, tokens, principal, name), await answer(full, tokens, principal, name)
        assert "errors" not in slow, slow
        assert fast == slow


async def test_compiled_path_uses_fewer_statements_than_rows(db: AsyncSession, two_clients, statement_counter) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, _ = two_clients
    organisation = await seed(db)
    statement_counter.reset()
    body = await answer(compiled, tokens, principal_for(organisation), "dashboard")
    assert len(body["data"]["regions"]["edges"]) == 2
    assert statement_counter.count <= 10


async def test_errors_come_from_the_full_executor(db: AsyncSession, two_clients) -> None:  # type: ignore[no-untyped-def]
    tokens, compiled, full = two_clients
    organisation = await seed(db)
    reader = principal_for(organisation, scopes={"programme:read"})
    query = "{ groups { totalCount } participants { totalCount } }"
    bodies = []
    for client in (compiled, full):
        response = await client.post("/graphql", json={"query": query},
                                     headers={"Authorization": f"Bearer {tokens.issue(reader)}"})  # fmt: skip
        bodies.append(response.json())
    assert bodies[0] == bodies[1]
    assert bodies[0]["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"

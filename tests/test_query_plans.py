"""The main reads use indexes: no statement a read sends scans a big table or reads the tenant's whole history.

Every statement the API sends for the main read shapes (region dashboard with roll-ups, the session page by
start time, participants with enrolments and attendance) is captured and explained with its own parameters.

* SQLite (``EXPLAIN QUERY PLAN``): a ``SCAN`` of a big table fails, and so does a ``SEARCH`` whose only
  constraint is ``organisation_id`` (that is every row of the tenant). The test database has no statistics,
  which is what a new installation starts with: the indexes must be chosen without them.
* PostgreSQL (``EXPLAIN (FORMAT JSON)``): the test data is tiny, so the planner would rightly scan; with
  sequential scans, hash and merge joins priced out, a remaining sequential scan of a big table means no
  index fits the statement. (Which index a tiny table's plan picks says nothing; the roll-up test below
  gives PostgreSQL enough rows and statistics to choose.)
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.domain import programme
from programme_api.domain.models import Attendance, AttendanceStatus, GroupSession, Role, SessionStatus

from .api import GraphQLClient
from .conftest import Capture
from .factories import (
    enrol,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
    record,
)

BIG_TABLES = ("group_sessions", "attendance", "enrolments", "session_facilitators")
START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
PERIOD = {"from": (START - timedelta(days=1)).isoformat(), "to": (START + timedelta(days=60)).isoformat()}

DASHBOARD = """query Dashboard($from: DateTime, $to: DateTime) {
  regions { edges { node { name totals(from: $from, to: $to) { activeGroups sessionsHeld uniqueAttendees }
    groups(first: 50) { edges { node { name attendanceRate(from: $from, to: $to)
      facilitators { role facilitator { displayName } }
      sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins } } } }
    } } } } } }
}"""
SESSION_PAGE = """query Sessions($from: DateTime, $to: DateTime) {
  sessions(first: 100, filter: {startsFrom: $from, startsBefore: $to}) {
    totalCount edges { node { id startsAt attendanceCounts { present } } }
  }
}"""
PEOPLE = """{ participants(first: 50) { edges { node { reference consecutiveAbsences
  enrolments { status attendance { status session { startsAt } } } } } } }"""
SHAPES = {"dashboard": (DASHBOARD, PERIOD), "session page": (SESSION_PAGE, PERIOD), "people": (PEOPLE, None)}


async def build_world(db: AsyncSession) -> Any:
    """A region-bound coordinator's view: their region's groups, sessions, participants and marks, beside
    another region's, so access filters have something to filter."""
    organisation = await make_organisation(db)
    mine, other = await make_region(db, organisation), await make_region(db, organisation)
    for region in (mine, other):
        for number in range(2):
            group = await make_group(db, region, name=f"Group {number}")
            people = [await make_participant(db, region) for _ in range(3)]
            for person in people:
                await enrol(db, person, group)
            for week in range(3):
                meeting = await make_session(
                    db, group, starts_at=START + timedelta(weeks=week), ends_at=START + timedelta(weeks=week, hours=2),
                    status=SessionStatus.HELD,
                )  # fmt: skip
                for index, person in enumerate(people):
                    await record(db, meeting, person, AttendanceStatus.PRESENT if index else AttendanceStatus.EXCUSED)
    scopes = {"programme:read", "participants:read"}
    return principal_for(organisation, role=Role.COORDINATOR, regions=[mine], scopes=scopes)


async def explain_sqlite(connection: AsyncConnection, statement: str, parameters: Any) -> list[str]:
    rows = (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
    return [row[3] for row in rows]


def sqlite_problems(plan: list[str]) -> list[str]:
    tables = "|".join(BIG_TABLES)
    scan = re.compile(rf"^SCAN ({tables})\b")
    tenant_only = re.compile(rf"^SEARCH ({tables}) USING (COVERING )?INDEX \w+ \(organisation_id=\?\)$")
    return [line for line in plan if scan.match(line) or tenant_only.match(line)]


async def explain_postgresql(connection: AsyncConnection, statement: str, parameters: Any) -> dict[str, Any]:
    result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
    plan: dict[str, Any] = result.scalar_one()[0]["Plan"]
    return plan


def postgresql_problems(node: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
        found.append(f"Seq Scan on {node['Relation Name']}")
    for child in node.get("Plans", []):
        found += postgresql_problems(child)
    return found


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_main_reads_use_indexes_not_the_tenants_whole_history(
    db: AsyncSession,
    unlimited_gql: GraphQLClient,
    connection: AsyncConnection,
    capture: Capture,
    backend: str,
    shape: str,
) -> None:
    coordinator = await build_world(db)
    query, variables = SHAPES[shape]
    capture.sent.clear()

    await unlimited_gql.data(query, variables, as_=coordinator)

    assert capture.sent, "the read sent no statement"
    if backend == "postgresql":
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    problems: dict[str, list[str]] = {}
    for statement, parameters in capture.sent:
        if backend == "sqlite":
            found = sqlite_problems(await explain_sqlite(connection, statement, parameters))
        else:
            found = postgresql_problems(await explain_postgresql(connection, statement, parameters))
        if found:
            problems[statement[:400]] = found
    assert problems == {}, "\n\n".join(f"{sql}\n  -> {found}" for sql, found in problems.items())


async def build_history(db: AsyncSession, groups: int = 40, weeks: int = 50) -> tuple[Any, list[Any], Any]:
    """An organisation with a long history: ``groups`` groups (two of them in the caller's region) with
    ``weeks`` held sessions each and five marks per session, bulk-inserted."""
    organisation = await make_organisation(db)
    mine, elsewhere = await make_region(db, organisation), await make_region(db, organisation)
    all_groups = [await make_group(db, mine if index < 2 else elsewhere) for index in range(groups)]
    people = [await make_participant(db, mine) for _ in range(5)]
    sessions, marks = [], []
    for group in all_groups:
        for week in range(weeks):
            session_id = uuid.uuid4()
            starts = START - timedelta(weeks=week)
            sessions.append({
                "id": session_id, "organisation_id": organisation.id, "group_id": group.id, "starts_at": starts,
                "ends_at": starts + timedelta(hours=2), "status": SessionStatus.HELD, "dropin_count": 0, "version": 1,
            })  # fmt: skip
            marks += [
                {"id": uuid.uuid4(), "organisation_id": organisation.id, "session_id": session_id,
                 "participant_id": person.id, "status": AttendanceStatus.PRESENT}
                for person in people
            ]  # fmt: skip
    await db.execute(sa.insert(GroupSession), sessions)
    await db.execute(sa.insert(Attendance), marks)
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(sa.text("ANALYZE groups, group_sessions, attendance"))
    return organisation, all_groups[:2], mine


def index_conditions(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(table or index, index condition) of every index scan in a PostgreSQL plan."""
    found = []
    if "Index Cond" in node:
        found.append((node.get("Relation Name") or node.get("Index Name", ""), node["Index Cond"]))
    for child in node.get("Plans", []):
        found += index_conditions(child)
    return found


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.ORG_ADMIN])
async def test_attendance_rate_reads_only_the_asked_groups_sessions(
    db: AsyncSession, connection: AsyncConnection, capture: Capture, backend: str, role: Role
) -> None:
    """The roll-up starts from the asked groups' sessions in the period (the organisation + group + start
    index), then each session's marks; the access filter probes rows instead of listing every session."""
    organisation, asked, region = await build_history(db)
    caller = principal_for(organisation, role=role, regions=[region] if role is Role.COORDINATOR else None)
    period = programme.Period(START - timedelta(weeks=8), START + timedelta(days=1))
    capture.sent.clear()

    rates = await programme.attendance_rates(db, caller, [group.id for group in asked], period)

    assert rates == {group.id: 1.0 for group in asked}
    [(statement, parameters)] = capture.sent
    if backend == "sqlite":
        plan = await explain_sqlite(connection, statement, parameters)
        assert sqlite_problems(plan) == []
        assert "SEARCH group_sessions USING INDEX ix_group_sessions_organisation_id_group_id_starts_at " \
               "(organisation_id=? AND group_id=? AND starts_at>? AND starts_at<?)" in plan, plan  # fmt: skip
        assert any(line.startswith("SEARCH attendance USING INDEX ix_attendance_organisation_id_session_id "
                                   "(organisation_id=? AND session_id=?)") for line in plan), plan  # fmt: skip
    else:
        tree = await explain_postgresql(connection, statement, parameters)
        assert postgresql_problems(tree) == []
        conditions = index_conditions(tree)
        assert any("group_id" in condition for table, condition in conditions if "group_sessions" in table), tree
        assert any("session_id" in condition for table, condition in conditions if "attendance" in table), tree

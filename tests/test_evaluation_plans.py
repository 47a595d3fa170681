"""The evaluator's page reads the page's rows, not the project's: its work follows the page size.

A page of ``evaluation { responses }`` is cut over the (organisation, completion) index first, and only the
page's rows get their derived columns (first baseline, sessions attended), each by an indexed lookup. Had the
statement derived every row first (the first baseline of every person, joined to every response) and cut the
page after, each page would read every response of the project, and a generic plan of the prepared statement
could pair every response with every baseline (seconds per page at the demo's size).

On PostgreSQL the project is large enough, and analysed, for the planner's own choice to matter: the page
statement is explained with ``ANALYZE`` and the rows it read from ``survey_responses`` are counted. On
SQLite (no statistics, as a new installation starts) ``EXPLAIN QUERY PLAN`` must search responses through
the (organisation, completion) index, and never scan the table nor search it by organisation alone (every
response of the tenant).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.domain.models import (
    Attendance,
    AttendanceStatus,
    Consent,
    ConsentPurpose,
    Participant,
    SurveyResponse,
    Timepoint,
)

from .api import GraphQLClient
from .conftest import Capture
from .factories import (
    evaluator_for,
    make_group,
    make_organisation,
    make_project,
    make_region,
    make_session,
    shipped_instrument_ids,
)

PAGE = 2
PEOPLE = 400
TIMEPOINTS = (Timepoint.BASELINE, Timepoint.FOLLOW_UP_1, Timepoint.EXIT)
ROWS_READ_PER_PAGE_ROW = 8
"""The page cut reads about one row per page row, and each page row looks up its person's baseline (twice
for its columns, once more for the attendance window): a few rows each, whatever the project's size."""

QUERY = """query P($after: String) { evaluation { responses(first: PAGE, after: $after) {
  edges { node { pseudonym timepoint score sessionsAttended change { baselineScore } } }
  pageInfo { hasNextPage endCursor } } } }""".replace("PAGE", str(PAGE))
START = datetime(2026, 3, 2, 12, tzinfo=UTC)
ANALYSED = ("survey_responses", "survey_instruments", "consents", "participants", "groups", "regions",
            "group_sessions", "attendance")  # fmt: skip


async def build_project(db: AsyncSession) -> Any:
    """``PEOPLE`` consenting people, each with a baseline, a follow-up and an exit response (bulk-inserted),
    and two who attended a session between baseline and follow-up: far more rows than a page."""
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    session = await make_session(db, group, starts_at=START + timedelta(days=3))
    instrument_id = (await shipped_instrument_ids(db))["phq9"]
    people = [{"id": uuid.uuid4(), "organisation_id": organisation.id, "region_id": region.id,
               "reference": f"P{number:05d}"} for number in range(PEOPLE)]  # fmt: skip
    await db.execute(sa.insert(Participant), people)
    await db.execute(sa.insert(Consent), [
        {"organisation_id": organisation.id, "participant_id": person["id"], "purpose": ConsentPurpose.EVALUATION,
         "form_version": "evaluation-v1", "given_at": START - timedelta(days=30)} for person in people
    ])  # fmt: skip
    await db.execute(sa.insert(SurveyResponse), [
        {"organisation_id": organisation.id, "participant_id": person["id"], "instrument_id": instrument_id,
         "group_id": group.id, "timepoint": timepoint, "answers": {}, "raw_score": 10.0 - step,
         "score": 10.0 - step, "band": "mild", "completed_at": START + timedelta(weeks=6 * step, minutes=number)}
        for number, person in enumerate(people) for step, timepoint in enumerate(TIMEPOINTS)
    ])  # fmt: skip
    for person in people[:2]:
        await db.execute(sa.insert(Attendance), [
            {"organisation_id": organisation.id, "session_id": session.id, "participant_id": person["id"],
             "status": AttendanceStatus.PRESENT}
        ])  # fmt: skip
    project = await make_project(db, organisation)
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(sa.text(f"ANALYZE {', '.join(ANALYSED)}"))
    return evaluator_for(organisation, project)


def page_statement(sent: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The statement that reads the page's rows (the one with a limit and the derived columns)."""
    [found] = [(sql, parameters) for sql, parameters in sent if "sessions_attended" in sql and "LIMIT" in sql]
    return found


def response_rows_read(node: dict[str, Any]) -> int:
    """Rows of ``survey_responses`` the plan's scans produced or filtered out, over all their loops."""
    read = 0
    if node.get("Relation Name") == "survey_responses":
        produced = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        read += round(produced * node["Actual Loops"])
    return read + sum(response_rows_read(child) for child in node.get("Plans", []))


def response_scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index condition) of every scan of ``survey_responses``."""
    found = []
    if node.get("Relation Name") == "survey_responses":
        found.append((node["Node Type"], node.get("Index Cond", "")))
    for child in node.get("Plans", []):
        found += response_scans(child)
    return found


async def test_a_page_reads_the_rows_of_the_page_not_of_the_project(
    db: AsyncSession, gql: GraphQLClient, connection: AsyncConnection, capture: Capture, backend: str
) -> None:
    evaluator = await build_project(db)
    first = (await gql.data(QUERY, {"after": None}, as_=evaluator))["evaluation"]["responses"]
    capture.sent.clear()

    second = (await gql.data(QUERY, {"after": first["pageInfo"]["endCursor"]}, as_=evaluator))["evaluation"]
    assert len(second["responses"]["edges"]) == PAGE
    statement, parameters = page_statement(capture.sent)

    if backend == "sqlite":
        rows = (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
        plan = [row[3] for row in rows]
        whole_tenant = re.compile(r"^SEARCH survey_responses USING (COVERING )?INDEX \w+ \(organisation_id=\?\)$")
        assert not [line for line in plan if line.startswith("SCAN survey_responses") or whole_tenant.match(line)], plan
        assert any(
            line.startswith("SEARCH survey_responses USING INDEX ix_survey_responses_organisation_id_completed_at")
            for line in plan
        ), plan
        return
    result = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
    tree: dict[str, Any] = result.scalar_one()[0]["Plan"]
    scans = response_scans(tree)
    assert ("Seq Scan", "") not in scans, scans
    assert any("organisation_id" in condition and "completed_at" in condition for _, condition in scans), scans
    assert response_rows_read(tree) <= ROWS_READ_PER_PAGE_ROW * (PAGE + 1) < PEOPLE * len(TIMEPOINTS), tree

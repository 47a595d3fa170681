"""The benchmark suite's moving parts, at a tiny scale: the generator loads, and the floor answers exactly
what the service answers for the same caller, so the floor's throughput is a fair yardstick.

The load runs themselves are not run here (they take minutes and measure the machine, not the code); CI can
run ``python benchmarks/run.py --scale 1 --smoke`` for that.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from benchmarks import generate
from benchmarks.floor import create_floor
from benchmarks.scenarios import DASHBOARD, SESSIONS, SESSIONS_AFTER, date_windows, without_cursors
from benchmarks.shared import RECORD_ATTENDANCE, REGISTER_SIZE, BenchCaller, find_caller, global_id
from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.models import ActorType
from programme_api.domain.principal import Principal

from .api import TokenBook
from .conftest import IN_CI, POSTGRES_URL, UNLIMITED


def region_reader(caller: BenchCaller) -> Principal:
    """The benchmark's region-bound reader, as its token would make it."""
    return Principal(subject="client:bench-reader", actor_type=ActorType.CLIENT,
                     organisation_id=caller.organisation_id,
                     scopes=frozenset({"programme:read", "participants:read", "attendance:write"}),
                     region_ids=frozenset({caller.region_id}), client_id="bench-reader")  # fmt: skip


@pytest.fixture
async def bench_database(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A freshly generated database at scale 0.05 (one region, two groups), dropped afterwards."""
    admin = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    monkeypatch.setattr(generate, "ADMIN_DSN", admin.render_as_string(hide_password=False))
    name = f"programme_bench_smoke_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        counts = await generate.generate(0.05, seed=3, database=name)
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable for the benchmark smoke test: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    assert counts["groups"] >= 2
    assert counts["attendance"] > 0
    yield generate.with_database(generate.ADMIN_DSN, name)
    connection = await asyncpg.connect(generate.ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def post(client: httpx.AsyncClient, body: dict[str, Any], token: str) -> dict[str, Any]:
    response = await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert "errors" not in answer, answer
    answer.pop("extensions", None)  # the service reports its costs; the floor has none to report
    return answer


async def test_floor_and_service_return_the_same_data(bench_database: str) -> None:
    """The floor's three operations answer exactly what the service answers for the same variables (cursors
    included: the floor decodes and encodes the service's keyset cursors by hand)."""
    connection = await asyncpg.connect(bench_database)
    try:
        caller = await find_caller(connection)
    finally:
        await connection.close()
    url = bench_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    tokens = TokenBook()
    token = tokens.issue(region_reader(caller))
    service = create_app(Settings(database_url=url, **UNLIMITED), authenticate=tokens.authenticate)
    floor = create_floor(bench_database)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://service") as to_service,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=floor), base_url="http://floor") as to_floor,
        ):
            start = date_windows(1)[0][0].isoformat()
            first = await post(to_service, {"query": SESSIONS_AFTER}, token)
            cursor = first["data"]["sessions"]["pageInfo"]["endCursor"]
            asked = [
                (DASHBOARD, "RegionDashboard", {"sessions": 20}),
                (DASHBOARD, "RegionDashboard", {"sessions": 7}),
                (SESSIONS, "SessionPage", {"from": start}),
                (SESSIONS_AFTER, "SessionPageAfter", {"after": cursor}),
            ]
            for query, operation, variables in asked:
                body = {"query": query, "operationName": operation, "variables": variables}
                expected = await post(to_service, body, token)
                assert await post(to_floor, body, "any") == expected
            second = await post(to_service, {"query": SESSIONS_AFTER, "variables": {"after": cursor}}, token)
            assert without_cursors(second) != without_cursors(first)
            dashboard = (await post(to_service, {"query": DASHBOARD, "variables": {"sessions": 20}}, token))["data"]
            groups = dashboard["regions"]["edges"][0]["node"]["groups"]["edges"]
            assert len(groups) >= 2
            assert all(len(group["node"]["sessions"]["edges"]) == 20 for group in groups)
            refused = await to_floor.post("/graphql", json={"query": DASHBOARD, "operationName": "RegionDashboard"})
            assert refused.status_code == 401
    finally:
        await floor.state.floor.close()
        await service.state.runtime.engine.dispose()


async def test_a_register_of_fifteen_and_the_evaluators_export_work_on_the_generated_data(bench_database: str) -> None:
    """What the write and export scenarios rely on: 15 active enrolments per group, and an evaluation project
    whose consented responses all come out of the CSV export."""
    connection = await asyncpg.connect(bench_database)
    try:
        caller = await find_caller(connection)
        session = await connection.fetchrow(
            "SELECT s.id, s.version, s.group_id FROM group_sessions s JOIN groups g ON g.id = s.group_id"
            " WHERE g.region_id = $1 AND s.status <> 'cancelled' ORDER BY s.starts_at LIMIT 1",
            caller.region_id,
        )
        members = await connection.fetch(
            "SELECT participant_id FROM enrolments WHERE group_id = $1 AND status = 'active' ORDER BY participant_id",
            session["group_id"],
        )
        project = await connection.fetchval("SELECT id FROM evaluation_projects WHERE slug = 'bench-evaluation'")
        responses = await connection.fetchval("SELECT count(*) FROM survey_responses")
    finally:
        await connection.close()
    assert len(members) >= REGISTER_SIZE
    url = bench_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    tokens = TokenBook()
    writer = tokens.issue(region_reader(caller))
    evaluator = tokens.issue(Principal(subject="client:bench-evaluator", actor_type=ActorType.CLIENT,
                                       organisation_id=caller.organisation_id, scopes=frozenset({"evaluation:read"}),
                                       evaluation_project_id=project))  # fmt: skip
    service = create_app(Settings(database_url=url, **UNLIMITED), authenticate=tokens.authenticate)
    entries = [{"participantId": global_id("Participant", row["participant_id"]), "status": "PRESENT"}
               for row in members[:REGISTER_SIZE]]  # fmt: skip
    variables = {"input": {"sessionId": global_id("GroupSession", session["id"]), "version": session["version"],
                           "entries": entries, "dropinCount": 1}}  # fmt: skip
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://service") as client:
            answer = await post(client, {"query": RECORD_ATTENDANCE, "variables": variables}, writer)
            result = answer["data"]["recordAttendance"]
            assert result["userErrors"] == [], result
            assert result["session"]["version"] == session["version"] + 1
            export = await client.get("/exports/surveys.csv", headers={"Authorization": f"Bearer {evaluator}"})
            assert export.status_code == 200, export.text
            assert export.text.count("\n") - 1 == responses
    finally:
        await service.state.runtime.engine.dispose()

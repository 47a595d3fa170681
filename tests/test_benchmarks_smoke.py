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
from benchmarks.serve_app import bench_principal, fixed_authenticator
from benchmarks.shared import (
    BENCH_TOKEN,
    DASHBOARD_QUERY,
    RECORD_ATTENDANCE,
    REGISTER_SIZE,
    SESSIONS_QUERY,
    find_caller,
    global_id,
)
from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.models import ActorType
from programme_api.domain.principal import Principal

from .conftest import IN_CI, POSTGRES_URL


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


async def post(client: httpx.AsyncClient, query: str, operation: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "operationName": operation},
        headers={"Authorization": f"Bearer {BENCH_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_floor_and_service_return_the_same_data(bench_database: str) -> None:
    connection = await asyncpg.connect(bench_database)
    try:
        caller = await find_caller(connection)
    finally:
        await connection.close()
    url = bench_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    service = create_app(Settings(database_url=url), authenticate=fixed_authenticator(bench_principal(caller)))
    floor = create_floor(bench_database)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://service") as to_service,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=floor), base_url="http://floor") as to_floor,
        ):
            for query, operation in ((DASHBOARD_QUERY, "RegionDashboard"), (SESSIONS_QUERY, "SessionPage")):
                expected = await post(to_service, query, operation)
                assert await post(to_floor, query, operation) == expected
            dashboard = (await post(to_service, DASHBOARD_QUERY, "RegionDashboard"))["data"]
            groups = dashboard["regions"]["edges"][0]["node"]["groups"]["edges"]
            assert len(groups) >= 2
            assert all(len(group["node"]["sessions"]["edges"]) == 20 for group in groups)
            refused = await to_floor.post("/graphql", json={"query": DASHBOARD_QUERY})
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
    service = create_app(Settings(database_url=url), authenticate=fixed_authenticator(bench_principal(caller)))
    entries = [{"participantId": global_id("Participant", row["participant_id"]), "status": "PRESENT"}
               for row in members[:REGISTER_SIZE]]  # fmt: skip
    variables = {"input": {"sessionId": global_id("GroupSession", session["id"]), "version": session["version"],
                           "entries": entries, "dropinCount": 1}}  # fmt: skip
    evaluator = Principal(subject="client:bench-evaluator", actor_type=ActorType.CLIENT,
                          organisation_id=caller.organisation_id, scopes=frozenset({"evaluation:read"}),
                          evaluation_project_id=project)  # fmt: skip
    exporter = create_app(Settings(database_url=url), authenticate=fixed_authenticator(evaluator))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://service") as client:
            response = await client.post("/graphql", json={"query": RECORD_ATTENDANCE, "variables": variables},
                                         headers={"Authorization": f"Bearer {BENCH_TOKEN}"})  # fmt: skip
            result = response.json()["data"]["recordAttendance"]
            assert result["userErrors"] == [], result
            assert result["session"]["version"] == session["version"] + 1
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=exporter), base_url="http://service") as client:
            export = await client.get("/exports/surveys.csv", headers={"Authorization": f"Bearer {BENCH_TOKEN}"})
            assert export.status_code == 200, export.text
            assert export.text.count("\n") - 1 == responses
    finally:
        await service.state.runtime.engine.dispose()
        await exporter.state.runtime.engine.dispose()

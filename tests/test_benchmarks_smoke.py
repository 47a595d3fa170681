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
from benchmarks.shared import BENCH_TOKEN, DASHBOARD_QUERY, SESSIONS_QUERY, find_caller
from programme_api.app import create_app
from programme_api.config import Settings

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

"""/healthz says the process is up; /readyz also needs the database reachable and migrated to head."""

from __future__ import annotations

from pathlib import Path

import httpx

from programme_api.app import create_app
from programme_api.config import Settings

from .conftest import MigratedDatabase


async def get(app, path: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path)


async def test_ready_when_migrated(migrated_database: MigratedDatabase) -> None:
    app = create_app(migrated_database.settings, engine=migrated_database.engine)
    assert (await get(app, "/healthz")).json() == {"status": "ok"}
    response = await get(app, "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_not_ready_without_schema(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    response = await get(app, "/readyz")
    assert response.status_code == 503
    assert "db upgrade" in response.json()["reason"]
    assert (await get(app, "/healthz")).status_code == 200


async def test_not_ready_when_database_unreachable() -> None:
    app = create_app(Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    response = await get(app, "/readyz")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unreachable")


async def test_metrics_count_requests_by_route(migrated_database: MigratedDatabase) -> None:
    app = create_app(migrated_database.settings, engine=migrated_database.engine)
    await get(app, "/healthz")
    body = (await get(app, "/metrics")).text
    assert 'programme_api_requests_total{method="GET",route="/healthz",status="200"}' in body

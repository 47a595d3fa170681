"""Time limits: an operation past the request deadline is stopped, rolled back and answered with TIMEOUT.

The slow step is a test hook: the domain function behind the second mutation (or a read) first sends a
statement that runs for seconds (``pg_sleep`` on PostgreSQL, a long recursive count on SQLite), with the
deadline set to a fraction of a second. PostgreSQL stops it by ``statement_timeout`` (set for the
transaction), SQLite by the progress handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.app import create_app
from programme_api.domain import regions
from programme_api.domain.models import Region
from programme_api.domain.principal import Principal

from .api import TokenBook
from .conftest import MigratedDatabase, as_app_role
from .factories import make_organisation, principal_for

DEADLINE = 0.5
SLOW = {
    "postgresql": "SELECT pg_sleep(20)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) "
    "SELECT count(*) FROM c",
}
TWO_WRITES = """mutation {
  first: createRegion(input: {slug: "deadline-first", name: "First"}) { region { id } userErrors { code } }
  slow: createRegion(input: {slug: "deadline-slow", name: "Slow"}) { region { id } userErrors { code } }
}"""


@pytest.fixture
async def hurried(  # type: ignore[no-untyped-def]
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenBook]]:
    """The app with a deadline of half a second, and the full executor for reads."""
    tokens = TokenBook()
    settings = migrated_database.settings.model_copy(
        update={"request_timeout_seconds": DEADLINE, "compiled_reads": False}
    )
    app = create_app(settings, engine=migrated_database.engine, session_maker=session_maker,
                     authenticate=tokens.authenticate)  # fmt: skip
    served = as_app_role(app, migrated_database.backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t") as client:
        yield client, tokens


@pytest.fixture
def slow_region_named(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """Creating a region whose slug starts with ``deadline-slow`` first runs a statement that takes seconds."""
    original = regions.create_region

    async def slow_create(session: AsyncSession, principal: Principal, data: Any) -> Region:
        if data.slug.startswith("deadline-slow"):
            await session.execute(sa.text(SLOW[backend]))
        return await original(session, principal, data)

    monkeypatch.setattr(regions, "create_region", slow_create)


async def post(hurried: tuple[httpx.AsyncClient, TokenBook], principal: Principal, query: str) -> httpx.Response:
    client, tokens = hurried
    return await client.post("/graphql", json={"query": query},
                             headers={"Authorization": f"Bearer {tokens.issue(principal)}"})  # fmt: skip


async def test_a_write_then_a_slow_step_times_out_and_keeps_nothing(  # type: ignore[no-untyped-def]
    hurried, slow_region_named: None, db: AsyncSession
) -> None:
    organisation = await make_organisation(db)
    caller = principal_for(organisation)
    started = time.monotonic()
    response = await post(hurried, caller, TWO_WRITES)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 3, f"took {elapsed:.1f} s"
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["TIMEOUT"]
    assert "Unexpected" not in response.text
    written = await db.scalar(
        sa.select(sa.func.count()).select_from(Region).where(Region.organisation_id == organisation.id)
    )
    assert written == 0  # the first region, written before the slow step, was rolled back with it
    # the connection is fit for the next request: no deadline or handler left behind
    after = await post(hurried, caller, "{ viewer { subject } }")
    assert after.json()["data"]["viewer"]["subject"] == caller.subject


async def test_a_fast_operation_is_untouched_by_the_deadline(  # type: ignore[no-untyped-def]
    hurried, slow_region_named: None, db: AsyncSession
) -> None:
    organisation = await make_organisation(db)
    response = await post(
        hurried, principal_for(organisation),
        'mutation { createRegion(input: {slug: "deadline-quick", name: "Quick"}) { region { slug } } }',
    )  # fmt: skip
    assert response.json()["data"]["createRegion"]["region"]["slug"] == "deadline-quick"
    written = await db.scalar(
        sa.select(sa.func.count()).select_from(Region).where(Region.organisation_id == organisation.id)
    )
    assert written == 1


async def test_a_slow_read_times_out(  # type: ignore[no-untyped-def]
    hurried, monkeypatch: pytest.MonkeyPatch, backend: str, db: AsyncSession
) -> None:
    from programme_api.schema import lists

    original = lists.fetch_page

    async def slow_page(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        await session.execute(sa.text(SLOW[backend]))
        return await original(session, *args, **kwargs)

    monkeypatch.setattr(lists, "fetch_page", slow_page)
    started = time.monotonic()
    response = await post(hurried, principal_for(await make_organisation(db)), "{ regions { nodes { name } } }")
    assert time.monotonic() - started < DEADLINE + 3
    body = response.json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["TIMEOUT"]


async def test_a_compiled_read_past_the_deadline_is_stopped_in_sqlite_too(tmp_path: Path) -> None:
    """The compiled path sends its statement straight to aiosqlite's thread: cancelled at the deadline, the
    statement is interrupted there, so the connection is free for the next request at once."""
    from programme_api.config import Settings
    from programme_api.db import create_engine
    from programme_api.schema.compiler.dialect import DIALECTS
    from programme_api.schema.compiler.route import run

    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'deadline.db'}"), pool_size=1,
                           max_overflow=0)  # fmt: skip
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await run(engine, DIALECTS["sqlite"], endless, ())
        assert time.monotonic() - started < 2
        async with asyncio.timeout(5):  # the one pooled connection answers again: the statement was stopped
            assert list(await run(engine, DIALECTS["sqlite"], "SELECT 41 + 1", ())) == [(42,)]
    finally:
        await engine.dispose()

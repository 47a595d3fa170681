"""A long-running SQLite server keeps its planner statistics fresh: ``PRAGMA optimize`` periodically and at
shutdown, and tables that were empty when statistics were last taken are analysed once they hold rows.

(Statistics after ``db upgrade`` and ``demo load`` are tested through the CLI in ``test_cli.py``.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory

from .conftest import empty_database_url, migrate
from .factories import make_group, make_organisation, make_region


@pytest.fixture
async def populated(tmp_path: Path) -> tuple[str, Path]:
    """A migrated file database whose groups were added after the migration took its statistics."""
    url = await empty_database_url("sqlite", tmp_path, "statistics")
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    async with session_factory(engine)() as db:
        region = await make_region(db, await make_organisation(db))
        for number in range(12):
            await make_group(db, region, name=f"Group {number}")
        await db.commit()
    await engine.dispose()
    return url, Path(make_url(url).database or "")


def analysed_tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as plain:
        if not plain.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchone()[0]:
            return set()
        return {row[0] for row in plain.execute("SELECT tbl FROM sqlite_stat1")}


async def test_a_serving_app_takes_statistics_periodically(populated: tuple[str, Path]) -> None:
    url, path = populated
    assert "groups" not in analysed_tables(path)
    app = create_app(Settings(database_url=url, sqlite_optimize_seconds=0.05))

    async with app.router.lifespan_context(app):
        for _ in range(200):
            if "groups" in analysed_tables(path):
                break
            await asyncio.sleep(0.05)
        assert "groups" in analysed_tables(path)


async def test_a_serving_app_takes_statistics_when_it_shuts_down(populated: tuple[str, Path]) -> None:
    url, path = populated
    app = create_app(Settings(database_url=url, sqlite_optimize_seconds=3600))

    async with app.router.lifespan_context(app):
        assert "groups" not in analysed_tables(path)

    assert "groups" in analysed_tables(path)

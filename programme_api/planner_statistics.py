"""Planner statistics: what lets the database pick the index that fits a statement.

Without statistics SQLite's planner guesses, and guessed wrong on our reads (the attendance tallies went
through the organisation index instead of the session's: 44 ms instead of 1.2 ms). So statistics are taken
after every migration and after a bulk load (``ANALYZE``), and a long-running SQLite server keeps them fresh
as the data grows: ``PRAGMA optimize`` periodically and before it shuts down, as SQLite recommends for
long-lived connections, bounded by ``analysis_limit`` so each run stays cheap. PostgreSQL's autovacuum keeps
its statistics fresh on its own; after a bulk load it lags, so the explicit ``ANALYZE`` runs there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

ANALYSIS_LIMIT = 400
"""Rows SQLite samples per index while keeping statistics fresh (its docs suggest 100-1000)."""


def analyze(connection: Connection) -> None:
    """Statistics for every table, in the connection's transaction (migrations call this at their end)."""
    connection.exec_driver_sql("ANALYZE")


async def analyze_session(session: AsyncSession) -> None:
    """``analyze`` in a session's transaction (after ``demo load``)."""
    await session.run_sync(lambda sync: analyze(sync.connection()))


def optimize_sqlite(connection: Connection) -> list[str]:
    """Keep SQLite's statistics fresh, cheaply; returns the tables analysed for lack of any statistics.

    ``PRAGMA optimize`` re-analyses tables whose statistics went stale, but before SQLite 3.46 only tables
    this connection's statements used, and never one that was empty when statistics were last taken (a new
    installation migrated before any data came). Such tables, now holding rows, are analysed here by name.
    """
    connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
    missing = _tables_without_statistics(connection)
    for table in missing:
        connection.exec_driver_sql(f'ANALYZE "{table}"')
    connection.exec_driver_sql("PRAGMA optimize=0x10002")
    return missing


def _tables_without_statistics(connection: Connection) -> list[str]:
    """Tables with indexes and rows but no ``sqlite_stat1`` entry."""
    has_statistics = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    analysed = (
        {row[0] for row in connection.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1")}
        if has_statistics
        else set()
    )
    indexed = connection.exec_driver_sql(
        "SELECT DISTINCT tbl_name FROM sqlite_schema WHERE type = 'index' AND tbl_name NOT LIKE 'sqlite_%'"
    )
    candidates = sorted(row[0] for row in indexed if row[0] not in analysed)
    return [name for name in candidates if connection.exec_driver_sql(f'SELECT 1 FROM "{name}" LIMIT 1').first()]


async def optimize(engine: AsyncEngine) -> None:
    """One ``optimize_sqlite`` run on a pooled connection, committed; a failure is logged, never raised."""
    try:
        async with engine.connect() as connection:
            analysed = await connection.run_sync(optimize_sqlite)
            await connection.commit()
    except Exception:
        log.exception("keeping SQLite's planner statistics fresh failed")
        return
    if analysed:
        log.info("analysed tables that had no planner statistics: %s", ", ".join(analysed))


@contextlib.asynccontextmanager
async def kept_fresh(engine: AsyncEngine, every_seconds: float) -> AsyncIterator[None]:
    """While the app serves: on SQLite, ``optimize`` every ``every_seconds`` and once at shutdown."""
    if engine.dialect.name != "sqlite":
        yield
        return

    async def periodically() -> None:
        while True:
            await asyncio.sleep(every_seconds)
            await optimize(engine)

    task = asyncio.create_task(periodically())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await optimize(engine)

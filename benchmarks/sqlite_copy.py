"""The generated data, copied row for row into a SQLite file, so the embedded default is measured on exactly
the data PostgreSQL serves (the two services must then give the same answers, and the ratio between them is
the cost of the backend alone).

The SQLite file is migrated with the project's own ``programme-api db upgrade``; rows are read from PostgreSQL
and written to SQLite through the same SQLAlchemy tables the service uses, so every value is stored the way
the service itself would store it (UUIDs, timestamps, enums, JSON).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

BATCH = 5_000


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def migrate_sqlite(path: Path, root: Path) -> None:
    """A new SQLite file at ``path`` with the schema the migrations build."""
    path.unlink(missing_ok=True)
    env = {**os.environ, "PROGRAMME_API_DATABASE_URL": sqlite_url(path), "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "db", "upgrade"]
    subprocess.run(command, env=env, check=True, cwd=root, stdout=subprocess.DEVNULL)


async def copy_to_sqlite(postgres_url: str, path: Path, root: Path) -> int:
    """Migrate a new SQLite file at ``path`` and copy every table's rows into it; returns the rows copied."""
    from programme_api.domain.models import Base

    await asyncio.to_thread(migrate_sqlite, path, root)
    source = create_async_engine(postgres_url)
    target = create_async_engine(sqlite_url(path))
    copied = 0
    try:
        async with source.connect() as reading, target.begin() as writing:
            for table in reversed(Base.metadata.sorted_tables):  # rows the migrations seed come over too
                await writing.execute(table.delete())
            for table in Base.metadata.sorted_tables:
                result = await reading.stream(sa.select(table))
                async for batch in result.mappings().partitions(BATCH):
                    await writing.execute(table.insert(), [dict(row) for row in batch])
                    copied += len(batch)
            await writing.exec_driver_sql("ANALYZE")
    finally:
        await source.dispose()
        await target.dispose()
    return copied

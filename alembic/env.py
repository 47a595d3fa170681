"""Alembic environment: async engine from the service's settings, batch mode so SQLite can ALTER.

A caller may hand in a ready connection via ``config.attributes["connection"]`` (the test fixtures and
``/readyz`` do), otherwise an engine is made from ``PROGRAMME_API_OWNER_DATABASE_URL`` (the tables' owner), or
``PROGRAMME_API_DATABASE_URL`` when no owner URL is set.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Connection

from alembic import context
from programme_api.config import load_settings
from programme_api.db import create_engine
from programme_api.domain.models import Base
from programme_api.migrations import sqlite_foreign_keys_deferred
from programme_api.planner_statistics import analyze

target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render the shared UTC timestamp type as the plain timezone-aware DateTime it is stored as."""
    if type_ == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        transaction_per_migration=False,
    )


def run_with_connection(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        with sqlite_foreign_keys_deferred(connection):
            context.run_migrations()
        # The planner's statistics, for the new indexes too (and a database upgraded with data in it).
        analyze(connection)


async def run_async() -> None:
    engine = create_engine(load_settings().as_owner())
    async with engine.connect() as connection:
        await connection.run_sync(run_with_connection)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with_connection(connection)
        return
    asyncio.run(run_async())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()

"""Running alembic from code: the CLI's ``db`` verbs, the test fixtures and ``/readyz`` use this."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from alembic import command

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def sqlite_foreign_keys_deferred(connection: Connection) -> Iterator[None]:
    """On SQLite, run the migrations with foreign keys off and check every reference before they commit.

    SQLite alters a table by rebuilding it (batch mode: copy, drop, rename), and with foreign keys on,
    dropping a table that others refer to deletes their rows through ``ON DELETE CASCADE``: a migration that
    adds a constraint to ``groups`` would empty enrolments, sessions and attendance. ``PRAGMA foreign_keys``
    cannot change inside a transaction, so the one alembic began is committed (it has only read the current
    revision), the migrations run in a transaction of their own, and a fresh one is begun for alembic to
    commit. Nothing to do on PostgreSQL, whose ALTER TABLE changes tables in place.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    run = connection.exec_driver_sql
    run("COMMIT")
    run("PRAGMA foreign_keys=OFF")
    run("BEGIN IMMEDIATE")
    try:
        yield
        broken = run("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"references that do not hold after migrating: {broken[:5]}")
        run("COMMIT")
    except BaseException:
        run("ROLLBACK")
        raise
    finally:
        run("PRAGMA foreign_keys=ON")
        run("BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config; with a connection, migrations run on it instead of opening their own."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(revision: str, connection: Connection | None = None) -> None:
    command.downgrade(alembic_config(connection), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def pending_reason(connection: Connection) -> str | None:
    """Why the database is not ready for this code (``None`` when it is at head)."""
    current, heads = current_revisions(connection), head_revisions()
    if current == heads:
        return None
    if not current:
        return "database has no schema; run `programme-api db upgrade`"
    found, expected = ", ".join(sorted(current)), ", ".join(sorted(heads))
    return f"database is at {found}, code expects {expected}; run `programme-api db upgrade`"

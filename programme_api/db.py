"""Engines and sessions. One unit of work per request: services flush, the request edge commits."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from .config import Settings
from .metrics import POOL_IN_USE, POOL_WAIT
from .request_context import statement_sent

READ_ONLY = "programme_api_read_only"
"""Execution option of a connection whose unit of work only reads (consumed when its transaction begins)."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """An engine for the configured database, with the per-backend settings that keep it correct."""
    url = settings.database_url
    options: dict[str, Any] = {}
    if is_sqlite(url):
        options["connect_args"] = {"timeout": 30}
    else:
        # JIT off: the service's statements are short, and row-level security's quals raise their estimated
        # cost past ``jit_above_cost``, where compiling took seconds for a dashboard that runs in milliseconds.
        options["connect_args"] = {
            "statement_cache_size": settings.statement_cache_size,
            "server_settings": {"jit": "off"},
        }
        if settings.statement_cache_size == 0:
            # Behind PgBouncer in transaction mode: a prepared statement may outlive its transaction on a server
            # connection another client gets next, so SQLAlchemy keeps none and names each one uniquely; and
            # PgBouncer refuses startup parameters, so ``jit`` is the role's setting there
            # (``ALTER ROLE programme_app SET jit = off``, README).
            options["connect_args"] = {
                "statement_cache_size": 0,
                "prepared_statement_cache_size": 0,
                "prepared_statement_name_func": _unique_statement_name,
            }
        # No ping per checkout (a round trip on every request); connections are recycled instead, and a
        # connection that died in between fails its request once and is replaced.
        options["pool_recycle"] = 300
        options["pool_size"] = settings.pool_size
        options["max_overflow"] = settings.max_overflow
        options["poolclass"] = TimedPool
    # JSON columns (survey answers, instrument definitions) decoded by orjson: several times faster than the
    # standard library on an export's hundreds of thousands of rows.
    options["json_deserializer"] = orjson.loads
    options.update(overrides)
    engine = create_async_engine(url, **options)
    _instrument(engine)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _unique_statement_name() -> str:
    return f"__programme_{uuid.uuid4().hex}__"


class TimedPool(AsyncAdaptedQueuePool):
    """The usual pool, timing how long each checkout waited for a connection (opening one included)."""

    def _do_get(self) -> ConnectionPoolEntry:
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            POOL_WAIT.observe(time.perf_counter() - started)


def _instrument(engine: AsyncEngine) -> None:
    """Count statements per request and connections in use, for /metrics."""
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *_args: statement_sent())
    event.listen(engine.sync_engine.pool, "checkout", lambda *_args: POOL_IN_USE.inc())
    event.listen(engine.sync_engine.pool, "checkin", lambda *_args: POOL_IN_USE.dec())


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Let SQLAlchemy own transactions (the sqlite3 module's own handling breaks SAVEPOINT and DDL),
    turn on foreign keys (off by default in SQLite), and use WAL so readers run beside the writer."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """A unit of work that may write takes the write lock up front (``BEGIN IMMEDIATE``): a deferred
    transaction that has read and then tries to write fails at once with "database is locked" when another
    writer holds the lock (SQLite does not wait there), while ``BEGIN IMMEDIATE`` waits its turn. A unit of
    work declared read-only (``READ_ONLY``) begins deferred: in WAL mode it reads a snapshot beside the
    writer and never queues on the write lock."""
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# Whether PostgreSQL's row-level security applies to this connection's role: not a superuser, not exempt
# (BYPASSRLS), and not (a member of) the owner of the tenant tables (the policies are not forced).
_ROW_SECURITY_APPLIES = text(
    "SELECT NOT (r.rolsuper OR r.rolbypassrls) AND NOT pg_has_role(current_user, c.relowner, 'MEMBER') "
    "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'public.groups'::regclass"
)


async def row_security_applies(engine: AsyncEngine) -> bool:
    """False when the service's role escapes the row-level security backstop (``serve`` warns then)."""
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as connection:
        return bool(await connection.scalar(_ROW_SECURITY_APPLIES))


def session_factory(bind: AsyncEngine | AsyncConnection, **options: Any) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (responses are built after the edge commits)."""
    return async_sessionmaker(bind=bind, expire_on_commit=False, autoflush=False, **options)


def read_only_session(maker: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A session from ``maker`` for a unit of work that only reads (a GraphQL query, an export, a token
    lookup). On SQLite its transaction begins deferred, so readers do not wait for writers; elsewhere it is
    an ordinary session. A session joined to a connection its caller already opened (the tests' rolled-back
    transaction) cannot choose how that transaction began, and is left as it is."""
    if isinstance(maker.kw.get("bind"), AsyncConnection):
        return maker()
    return maker(execution_options={READ_ONLY: True})


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose connections begin read-only transactions (see ``read_only_session``)."""
    return engine.execution_options(**{READ_ONLY: True})

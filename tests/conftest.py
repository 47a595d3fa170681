"""Test databases built by migrations, one per backend, each test inside a transaction rolled back after it.

Every test that takes ``db`` (or anything built on it) runs twice: on SQLite and on PostgreSQL. PostgreSQL is
found at ``PROGRAMME_API_TEST_POSTGRES_URL`` (default: the local trust-auth server). When it cannot be reached
the PostgreSQL half is skipped on a laptop but fails under ``CI=true``: CI must prove both databases.

On PostgreSQL the app under test runs as the non-owner login role ``programme_app_test`` (created if missing,
granted DML on the test database's tables and the tenant-lookup functions), so row-level security applies to
every HTTP test as it does in production. The factories still write as the owner (several organisations in
one test), and everything shares one connection in one rolled-back transaction. ``AsAppRole`` wraps the ASGI
app: each request starts with ``SET ROLE programme_app_test`` and with the tenant settings cleared (a binding
left by the previous request, whose savepoint was released, must not carry over), and ends with ``RESET
ROLE``. Requests on the shared connection run one at a time anyway, so the role switch brackets exactly one
request; it costs two round trips per request, sent straight to the driver (so statement counts do not see
them), and the data stays uncommitted.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from programme_api import migrations
from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory

from .api import GraphQLClient, TokenBook

APP_ROLE = "programme_app_test"
POSTGRES_URL = os.environ.get("PROGRAMME_API_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("PROGRAMME_API_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["sqlite", "postgresql"]
# Settings for apps that compare or measure heavy shapes, where the cost and rate limits are not the subject.
UNLIMITED = {"max_query_cost": 10**9, "max_query_nodes": 10**9, "rate_limit_points": 10**9}


@dataclass
class MigratedDatabase:
    """A migrated database for one backend: its URL and a ready engine."""

    backend: str
    url: str
    engine: AsyncEngine
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = Settings(database_url=self.url)


async def create_postgres_database(name: str) -> str:
    """Create an empty database beside the configured one and return its URL."""
    admin = create_engine(Settings(database_url=POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        message = f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string(hide_password=True)} unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests may not be skipped)")
        pytest.skip(message)
    finally:
        await admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(name: str) -> None:
    admin = create_engine(Settings(database_url=POSTGRES_URL), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def empty_database_url(backend: str, directory: Path, label: str) -> str:
    """A new, empty database of the given backend, for tests that migrate or populate it themselves."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{directory / f'{label}.db'}"
    return await create_postgres_database(f"programme_api_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}")


@pytest.fixture(params=BACKENDS)
async def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a new, empty database of each backend, for tests that run the migrations themselves."""
    url = await empty_database_url(request.param, tmp_path, "migrations")
    engine = create_engine(Settings(database_url=url))
    yield engine
    await engine.dispose()
    if request.param == "postgresql":
        await drop_postgres_database(make_url(url).database or "")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: migrations.upgrade(sync))
        await connection.commit()


async def redis_available() -> None:
    """Skip when Redis is unreachable, except in CI, which must test what goes through Redis for real."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"no Redis at {REDIS_URL} ({exc}); CI must test the Redis channel for real")
        pytest.skip(f"no Redis at {REDIS_URL} ({exc})")
    finally:
        await client.aclose()


async def grant_app_role(engine: AsyncEngine) -> None:
    """Create the non-owner login role if missing and let it do what the service's role may do here."""
    statements = [
        f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {APP_ROLE}",
    ]
    async with engine.connect() as connection:
        for statement in statements:
            await connection.execute(sa.text(statement))
        await connection.commit()


def app_role_url(url: str) -> str:
    """The same database, reached as the non-owner role (trust authentication: no password)."""
    return make_url(url).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)


class AsAppRole:
    """The ASGI app with each request run as ``APP_ROLE`` on the tests' shared connection (see above)."""

    ENTER = (
        f"SET ROLE {APP_ROLE}; "
        "SELECT set_config('app.organisation_id', '', false), set_config('app.region_ids', '', false)"
    )

    def __init__(self, app: Any, connection: AsyncConnection) -> None:
        self.app = app
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = await self.connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        if not driver.is_in_transaction():
            # The driver begins the test's transaction lazily; the role switch must happen inside it, or the
            # rollback after the test would undo the RESET but not the SET, leaving a pooled connection switched.
            await raw.dbapi_connection._start_transaction()  # type: ignore[union-attr]
        await driver.execute(self.ENTER)
        try:
            await self.app(scope, receive, send)
        finally:
            await driver.execute("RESET ROLE")


def as_app_role(app: Any, backend: str, connection: AsyncConnection) -> Any:
    """``app`` as the non-owner role on PostgreSQL; unchanged on SQLite (no row-level security there)."""
    return AsAppRole(app, connection) if backend == "postgresql" else app


@pytest.fixture(scope="session", params=BACKENDS)
async def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MigratedDatabase]:
    """One migrated database per backend for the whole run (built with ``alembic upgrade head``)."""
    backend: str = request.param
    url = await empty_database_url(backend, tmp_path_factory.mktemp("db"), "shared")
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    if backend == "postgresql":
        await grant_app_role(engine)
    yield MigratedDatabase(backend=backend, url=url, engine=engine)
    await engine.dispose()
    if backend == "postgresql":
        await drop_postgres_database(make_url(url).database or "")


@pytest.fixture
def backend(migrated_database: MigratedDatabase) -> str:
    return migrated_database.backend


@pytest.fixture
async def connection(migrated_database: MigratedDatabase) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends, whatever it committed."""
    async with migrated_database.engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def session_maker(connection: AsyncConnection) -> Any:
    """Sessions joined to the test's transaction: their commits become savepoints, undone after the test."""
    return session_factory(connection, join_transaction_mode="create_savepoint")


@pytest.fixture
async def db(session_maker: Any) -> AsyncIterator[AsyncSession]:
    async with session_maker() as session:
        yield session


class StatementCounter:
    """Counts SQL statements sent on a connection (savepoint bookkeeping excluded)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def statement_counter(connection: AsyncConnection) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    sa.event.listen(connection.sync_connection, "before_cursor_execute", counter)
    yield counter
    sa.event.remove(connection.sync_connection, "before_cursor_execute", counter)


@pytest.fixture
async def http(
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenBook]]:
    """An HTTP client on the ASGI app (as the non-owner role on PostgreSQL), sharing the test's transaction;
    bearer tokens come from a TokenBook."""
    async with served_app(migrated_database, migrated_database.settings, session_maker, connection) as served:
        yield served


@contextlib.asynccontextmanager
async def served_app(
    migrated_database: MigratedDatabase, settings: Settings, session_maker: Any, connection: AsyncConnection
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenBook]]:
    tokens = TokenBook()
    app = create_app(settings, engine=migrated_database.engine, session_maker=session_maker,
                     authenticate=tokens.authenticate)  # fmt: skip
    served = as_app_role(app, migrated_database.backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://testserver") as client:
        yield client, tokens


@pytest.fixture
async def unlimited_gql(
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection
) -> AsyncIterator[GraphQLClient]:
    """``gql`` without the query cost and rate limits, for tests of heavy read shapes themselves."""
    settings = migrated_database.settings.model_copy(update=UNLIMITED)
    async with served_app(migrated_database, settings, session_maker, connection) as served:
        yield GraphQLClient(*served)


@pytest.fixture
def gql(http: tuple[httpx.AsyncClient, TokenBook]) -> GraphQLClient:
    return GraphQLClient(*http)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.only_backend(name)``: run a backend-specific test only on that database (not as a skip,
    so a skipped PostgreSQL test always means PostgreSQL was missing)."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("only_backend")
        params = getattr(getattr(item, "callspec", None), "params", {})
        backend = params.get("migrated_database") or params.get("live")
        (dropped if marker and backend and backend != marker.args[0] else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many tests ran on each database, so a run that skipped PostgreSQL cannot pass unnoticed."""
    tallies: dict[str, dict[str, int]] = {backend: {} for backend in BACKENDS}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            for backend in BACKENDS:
                if f"[{backend}" in getattr(report, "nodeid", "") or f"-{backend}" in getattr(report, "nodeid", ""):
                    tallies[backend][outcome] = tallies[backend].get(outcome, 0) + 1
    for backend, counts in tallies.items():
        summary = ", ".join(f"{number} {outcome}" for outcome, number in sorted(counts.items())) or "none"
        terminalreporter.write_line(f"tests on {backend}: {summary}")


@pytest.fixture
async def two_clients(migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection):  # type: ignore[no-untyped-def]
    """The same app twice: compiled reads on, and off (the full executor only)."""
    tokens = TokenBook()
    clients = []
    for compiled in (True, False):
        # The paths are compared on heavy shapes on purpose: no cost or rate limit stands in the way.
        update = {"compiled_reads": compiled, **UNLIMITED}
        settings = migrated_database.settings.model_copy(update=update)
        app = create_app(settings, engine=migrated_database.engine, session_maker=session_maker,
                         authenticate=tokens.authenticate)  # fmt: skip
        served = as_app_role(app, migrated_database.backend, connection)
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t"))
    yield tokens, clients[0], clients[1]
    for client in clients:
        await client.aclose()

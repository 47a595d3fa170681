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

The HTTP modules in ``THROUGH_PGBOUNCER`` run a third time, on ``pgbouncer``: the app gets an engine of its own
that logs in as ``programme_app_test`` through a PgBouncer in transaction mode (started once per session,
two server connections per database and role, so consecutive transactions land on different server
connections) with ``STATEMENT_CACHE_SIZE=0``, as the README's production section prescribes. Every request
commits its own transactions there, so session state the service left behind (a ``SET`` without ``LOCAL``, a
prepared statement, an advisory lock, ``LISTEN``) would surface in a later request. The factories write
straight to PostgreSQL as the owner; what they wrote is committed before each request (the app could not see
it otherwise), and every table is emptied after each test instead of a rollback.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from programme_api import migrations
from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory

from .api import GraphQLClient, TokenBook
from .pgbouncer import pgbouncer, through

APP_ROLE = "programme_app_test"
POSTGRES_URL = os.environ.get("PROGRAMME_API_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("PROGRAMME_API_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["sqlite", "postgresql"]
PGBOUNCER = "pgbouncer"
# HTTP modules that also run with the app behind PgBouncer: reads, every family of writes, refusals and bad
# input, the admin API, exports, and OAuth's token endpoint, refresh and authorization code flows. Chosen to
# cover the API broadly while adding a few minutes to the run, not every module that drives the app.
THROUGH_PGBOUNCER = frozenset(
    {
        "test_api_admin",
        "test_api_reads",
        "test_api_writes_attendance",
        "test_api_writes_facilitation",
        "test_api_writes_people",
        "test_api_writes_programme",
        "test_api_writes_schedules",
        "test_bad_input",
        "test_exports",
        "test_oauth_authorization_code",
        "test_oauth_client_credentials",
        "test_oauth_refresh",
    }
)
# Settings for apps that compare or measure heavy shapes, where the cost and rate limits are not the subject.
UNLIMITED = {"max_query_cost": 10**9, "max_query_nodes": 10**9, "rate_limit_points": 10**9}


@dataclass
class MigratedDatabase:
    """A migrated database for one backend: the URL the app connects to, an engine for the fixtures, and on
    ``pgbouncer`` the app's own engine (through PgBouncer, as the non-owner role)."""

    backend: str
    url: str
    engine: AsyncEngine
    app_engine: AsyncEngine | None = None
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        statement_cache = {"statement_cache_size": 0} if self.backend == PGBOUNCER else {}
        self.settings = Settings(database_url=self.url, **statement_cache)

    def app_binding(self, session_maker: Any) -> dict[str, Any]:
        """``create_app``'s engine and session maker: the test's transaction, or behind PgBouncer the app's
        own engine, whose sessions commit."""
        if self.app_engine is None:
            return {"engine": self.engine, "session_maker": session_maker}
        return {"engine": self.app_engine, "session_maker": None}


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


class AppOnTestConnection:
    """The ASGI app wrapped to prepare the test's connection for each request (attributes are the app's)."""

    def __init__(self, app: Any, connection: AsyncConnection) -> None:
        self.app = app
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


class AsAppRole(AppOnTestConnection):
    """The ASGI app with each request run as ``APP_ROLE`` on the tests' shared connection (see above)."""

    ENTER = (
        f"SET ROLE {APP_ROLE}; "
        "SELECT set_config('app.organisation_id', '', false), set_config('app.region_ids', '', false)"
    )

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


class CommitsFirst(AppOnTestConnection):
    """The ASGI app behind PgBouncer, with what the test's sessions wrote committed before each request."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await commit_test_writes(self.connection)
        await self.app(scope, receive, send)


def as_app_role(app: Any, backend: str, connection: AsyncConnection) -> Any:
    """``app`` as the non-owner role on PostgreSQL; behind PgBouncer it logs in as that role (and sees the
    test's writes, ``seeing_test_writes``); unchanged on SQLite (no row-level security there)."""
    return AsAppRole(app, connection) if backend == "postgresql" else seeing_test_writes(app, backend, connection)


def seeing_test_writes(app: Any, backend: str, connection: AsyncConnection) -> Any:
    """``app`` able to see what the test wrote: behind PgBouncer that is committed before each request; on the
    other backends the app shares the test's transaction already."""
    return CommitsFirst(app, connection) if backend == PGBOUNCER else app


SERVED_APPS = frozenset({"http", "gql", "unlimited_gql", "two_clients", "web", "live"})
"""Fixtures that serve the app under test: only tests that drive it run behind PgBouncer."""


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of the ``THROUGH_PGBOUNCER`` modules that drive the app also run on ``pgbouncer`` (first, so the
    parametrisation given here takes the place of the fixture's own)."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in THROUGH_PGBOUNCER and SERVED_APPS.intersection(metafunc.fixturenames):
        metafunc.definition.add_marker(
            pytest.mark.parametrize("migrated_database", [*BACKENDS, PGBOUNCER], indirect=True, scope="session")
        )


@pytest.fixture(scope="session")
def pgbouncer_port() -> Iterator[int]:
    """One PgBouncer in transaction mode for the whole run (skipped without the binary, failing in CI)."""
    with pgbouncer(POSTGRES_URL, [make_url(POSTGRES_URL).username or "postgres", APP_ROLE], required=IN_CI) as port:
        yield port


@pytest.fixture(scope="session", params=BACKENDS)
async def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MigratedDatabase]:
    """One migrated database per backend for the whole run (built with ``alembic upgrade head``)."""
    backend: str = request.param
    if backend == PGBOUNCER:
        port: int = request.getfixturevalue("pgbouncer_port")
        async with bounced_database(port) as bounced:
            yield bounced
        return
    url = await empty_database_url(backend, tmp_path_factory.mktemp("db"), "shared")
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    if backend == "postgresql":
        await grant_app_role(engine)
    yield MigratedDatabase(backend=backend, url=url, engine=engine)
    await engine.dispose()
    if backend == "postgresql":
        await drop_postgres_database(make_url(url).database or "")


@contextlib.asynccontextmanager
async def bounced_database(port: int) -> AsyncIterator[MigratedDatabase]:
    """A migrated database of its own (its tables are emptied after every test) with the app reaching it
    through PgBouncer as the non-owner role, ``jit`` off by the role's setting as the README asks there."""
    url = await empty_database_url("postgresql", Path(), "bounced")
    name = make_url(url).database or ""
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    await grant_app_role(engine)
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f'ALTER ROLE {APP_ROLE} IN DATABASE "{name}" SET jit = off')
        await connection.commit()
    bounced = MigratedDatabase(backend=PGBOUNCER, url=through(port, url, APP_ROLE), engine=engine)
    bounced.app_engine = create_engine(bounced.settings)
    try:
        yield bounced
    finally:
        await bounced.app_engine.dispose()
        await engine.dispose()
        await drop_postgres_database(name)


@pytest.fixture
def backend(migrated_database: MigratedDatabase) -> str:
    return migrated_database.backend


@pytest.fixture
async def connection(migrated_database: MigratedDatabase) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends, whatever it committed;
    behind PgBouncer one whose writes are committed before each request, the tables emptied after the test."""
    async with migrated_database.engine.connect() as connection:
        if migrated_database.backend == PGBOUNCER:
            connection.info[TEST_SESSIONS] = []
            try:
                yield connection
            finally:
                await empty_tables(connection)
            return
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


TEST_SESSIONS = "programme_api_test_sessions"
"""``connection.info`` key of the sessions a test opened behind PgBouncer, committed before each request."""


class TrackedSessions(async_sessionmaker[AsyncSession]):
    """Sessions on the test's connection, each remembered on it so a request can commit them first."""

    def __call__(self, **local_kw: Any) -> AsyncSession:
        session = super().__call__(**local_kw)
        connection: AsyncConnection = self.kw["bind"]
        connection.info[TEST_SESSIONS].append(session)
        return session


async def commit_test_writes(connection: AsyncConnection) -> None:
    """Commit what the test wrote so far, newest session first (a later session's work is a savepoint in an
    earlier one's transaction), then the connection's own statements."""
    for session in reversed(connection.info[TEST_SESSIONS]):
        if session.in_transaction():
            await session.commit()
    if connection.in_transaction():
        await connection.commit()


async def empty_tables(connection: AsyncConnection) -> None:
    """Remove every row the test left behind, in one round trip. ``DELETE`` rather than ``TRUNCATE``: a few
    rows in a few tables go at once, where truncating every table took seconds. While replicating no trigger
    fires, so neither foreign keys nor the audit log's append-only rule stand in the way (the owner may).
    Locks are waited for briefly: a request that never finished fails the test here instead of hanging it."""
    for session in connection.info.pop(TEST_SESSIONS):
        await session.close()
    await connection.rollback()
    tables = await connection.scalars(
        sa.text("SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'")
    )  # fmt: skip
    deletes = "".join(f"DELETE FROM {table}; " for table in tables)
    await connection.rollback()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.execute(
        f"BEGIN; SET LOCAL session_replication_role = replica; SET LOCAL lock_timeout = '10s'; {deletes}COMMIT"
    )


@pytest.fixture
def session_maker(connection: AsyncConnection) -> Any:
    """Sessions joined to the test's transaction: their commits become savepoints, undone after the test.
    Behind PgBouncer, sessions on the test's connection, committed before each request."""
    if TEST_SESSIONS in connection.info:
        return TrackedSessions(**session_factory(connection).kw)
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
def statement_counter(migrated_database: MigratedDatabase, connection: AsyncConnection) -> Iterator[StatementCounter]:
    """Counts the app's statements: on the test's connection, or behind PgBouncer on the app's engine."""
    counter = StatementCounter()
    app_engine = migrated_database.app_engine
    target = connection.sync_connection if app_engine is None else app_engine.sync_engine
    sa.event.listen(target, "before_cursor_execute", counter)
    yield counter
    sa.event.remove(target, "before_cursor_execute", counter)


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
    served = serve(migrated_database, settings, session_maker, connection, tokens.authenticate)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://testserver") as client:
        yield client, tokens


def serve(
    migrated_database: MigratedDatabase,
    settings: Settings,
    session_maker: Any,
    connection: AsyncConnection,
    authenticate: Callable[..., Any],
) -> Any:
    """The app under test, bound to the test's database as ``MigratedDatabase.app_binding`` says and served
    as ``as_app_role`` says."""
    app = create_app(settings, **migrated_database.app_binding(session_maker), authenticate=authenticate)
    return as_app_role(app, migrated_database.backend, connection)


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
    tallies: dict[str, dict[str, int]] = {backend: {} for backend in [*BACKENDS, PGBOUNCER]}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            for backend in tallies:
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
        served = serve(migrated_database, settings, session_maker, connection, tokens.authenticate)
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t"))
    yield tokens, clients[0], clients[1]
    for client in clients:
        await client.aclose()


class Capture:
    """Statements (with their parameters) sent on the test's connection."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.sent.append((statement, parameters))


@pytest.fixture
def capture(connection: AsyncConnection) -> Iterator[Capture]:
    listener = Capture()
    sa.event.listen(connection.sync_connection, "before_cursor_execute", listener)
    yield listener
    sa.event.remove(connection.sync_connection, "before_cursor_execute", listener)

"""The service behind PgBouncer in transaction mode, as production runs it (``STATEMENT_CACHE_SIZE=0``).

Two organisations' clients take turns on two server connections: every token issued, every compiled and
executor read and every write must work, and each caller must see only its own organisation — a tenant
binding or prepared statement left on a server connection would show up here as another tenant's rows or
as "prepared statement does not exist".
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.notifications import bus
from programme_api.oauth.clients import create_client
from programme_api.oauth.listeners import PostgresListener, build_channel

from .conftest import APP_ROLE, POSTGRES_URL, create_postgres_database, drop_postgres_database, grant_app_role, migrate
from .factories import make_group, make_organisation, make_region
from .pgbouncer import through
from .test_oauth_workers import REDIS_URL, redis_available


@dataclass
class Tenant:
    slug: str
    group_names: set[str]
    credentials: tuple[str, str]


@dataclass
class Bounced:
    http: httpx.AsyncClient
    tenants: list[Tenant]


async def seed(url: str) -> list[Tenant]:
    engine = create_engine(Settings(database_url=url))
    tenants = []
    try:
        async with session_factory(engine)() as session:
            for index in range(2):
                organisation = await make_organisation(session)
                region = await make_region(session, organisation)
                names = {f"Group {index}-{n} {uuid.uuid4().hex[:4]}" for n in range(3)}
                for name in names:
                    await make_group(session, region, name=name)
                await session.flush()
                created = await create_client(
                    session, organisation_slug=organisation.slug, name="Partner app",
                    scope="programme:read programme:write", region_slugs=[], grants=[], redirect_uris=[],
                    evaluation_project_slug=None, public=False,
                )  # fmt: skip
                assert created.client_secret is not None
                tenants.append(Tenant(organisation.slug, names, (created.client_id, created.client_secret)))
            await session.commit()
    finally:
        await engine.dispose()
    return tenants


@pytest.fixture(scope="module")
async def bounced(tmp_path_factory: pytest.TempPathFactory, pgbouncer_port: int) -> AsyncIterator[Bounced]:
    await redis_available()  # LISTEN needs a session: behind PgBouncer, notifications go over Redis
    url = await create_postgres_database(f"programme_api_pgbouncer_{os.getpid()}")
    owner = create_engine(Settings(database_url=url))
    await migrate(owner)
    await grant_app_role(owner)
    async with owner.connect() as connection:  # what the README asks of the service's role behind PgBouncer
        await connection.exec_driver_sql(f'ALTER ROLE {APP_ROLE} IN DATABASE "{make_url(url).database}" SET jit = off')
        await connection.commit()
    await owner.dispose()
    tenants = await seed(url)
    directory: Path = tmp_path_factory.mktemp("pgbouncer")
    settings = Settings(
        database_url=through(pgbouncer_port, url, APP_ROLE),
        statement_cache_size=0,
        pool_size=6,
        max_overflow=0,
        redis_url=REDIS_URL,
        secret_key_file=directory / "keys.json",
        issuer="http://127.0.0.1:8000",
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http,
    ):
        yield Bounced(http, tenants)
    await drop_postgres_database(make_url(url).database or "")


async def token(bounced: Bounced, tenant: Tenant) -> str:
    response = await bounced.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                       auth=tenant.credentials)  # fmt: skip
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


async def ask(bounced: Bounced, bearer: str, query: str, variables: dict[str, object] | None = None) -> dict:  # type: ignore[type-arg]
    response = await bounced.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                       headers={"Authorization": f"Bearer {bearer}"})  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict = response.json()  # type: ignore[type-arg]
    assert "errors" not in body, body
    return body


GROUPS = "{ groups(first: 50) { totalCount nodes { name } } }"
# Fields the compiler leaves to the resolvers: the same request on the executor's unit of work.
VIEWER_AND_GROUPS = "{ viewer { subject } groups(first: 50) { nodes { name } } }"


@pytest.mark.only_backend("postgresql")
async def test_tokens_reads_and_writes_through_pgbouncer_stay_in_their_tenant(bounced: Bounced) -> None:
    bearers = [await token(bounced, tenant) for tenant in bounced.tenants]

    async def one_round(index: int) -> None:
        tenant, bearer = bounced.tenants[index % 2], bearers[index % 2]
        compiled = await ask(bounced, bearer, GROUPS)
        assert {node["name"] for node in compiled["data"]["groups"]["nodes"]} == tenant.group_names
        executed = await ask(bounced, bearer, VIEWER_AND_GROUPS)
        assert {node["name"] for node in executed["data"]["groups"]["nodes"]} == tenant.group_names
        slug = f"r{index}-{uuid.uuid4().hex[:6]}"
        written = await ask(
            bounced, bearer,
            "mutation($input: CreateRegionInput!) { createRegion(input: $input) { region { slug } userErrors { code } } }",
            {"input": {"slug": slug, "name": f"Region {slug}", "idempotencyKey": slug}},
        )  # fmt: skip
        assert written["data"]["createRegion"] == {"region": {"slug": slug}, "userErrors": []}

    await asyncio.gather(*(one_round(index) for index in range(24)))
    for tenant, bearer in zip(bounced.tenants, bearers, strict=True):
        regions = await ask(bounced, bearer, "{ regions(first: 100) { totalCount } }")
        assert regions["data"]["regions"]["totalCount"] == 1 + 12  # its own seeded region and its 12 writes
        fresh = await token(bounced, tenant)  # issuance keeps working after the traffic
        assert (await ask(bounced, fresh, GROUPS))["data"]["groups"]["totalCount"] == 3


async def test_behind_pgbouncer_without_redis_nothing_listens_and_no_cached_token_is_trusted() -> None:
    """A ``LISTEN`` through PgBouncer stays on a shared server connection (whose later clients then hang), so
    the token views and the event bus do not listen there, and cached tokens are not trusted."""
    settings = Settings(database_url=POSTGRES_URL, statement_cache_size=0)
    engine = create_engine(settings)
    try:
        views, events = build_channel(settings, engine), bus.build_listener(settings, engine)
        assert not isinstance(views, PostgresListener)
        assert not isinstance(events, PostgresListener)
        assert not views.trusts(time.monotonic())
        direct = Settings(database_url=POSTGRES_URL)
        assert isinstance(build_channel(direct, engine), PostgresListener)  # reached directly, it listens
    finally:
        await engine.dispose()

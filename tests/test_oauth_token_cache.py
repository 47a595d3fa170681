"""The resource server remembers each token's verdict: no database round trip for a token it has seen, and
every change that narrows what the token may do drops the verdict on the worker that made it at once.

These run in one process on the test's transaction (SQLite and PostgreSQL); the same guarantees across
worker processes are in ``test_oauth_workers.py``.
"""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import AuditEvent
from programme_api.oauth import admin, listeners
from programme_api.oauth.views import CachedViews

from .conftest import MigratedDatabase, StatementCounter
from .oauth_support import (
    ISSUER,
    World,
    app,
    bearer,
    client_credentials,
    person_tokens,
    settings,
    web,
    world,
)


@pytest.fixture
async def running(app: Starlette) -> AsyncIterator[Starlette]:
    """The app with its lifespan run, as uvicorn runs it: the change listener is subscribed."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def live(running: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=running), base_url=ISSUER) as client:
        yield client


def views(app: Starlette) -> CachedViews:
    found: CachedViews = app.state.cached_views
    return found


async def machine_token(web: httpx.AsyncClient, world: World) -> str:
    response = await client_credentials(web, world.clients["machine"])
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def probe(web: httpx.AsyncClient, token: str) -> httpx.Response:
    return await web.get("/_probe", headers=bearer(token))


async def test_a_token_seen_before_costs_no_database_round_trip(
    live: httpx.AsyncClient, world: World, statement_counter: StatementCounter
) -> None:
    token = await machine_token(live, world)
    first = await probe(live, token)
    assert first.status_code == 200
    statement_counter.reset()
    again = await probe(live, token)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert statement_counter.statements == []


async def test_a_graphql_read_with_a_seen_token_sends_only_its_own_statements(
    live: httpx.AsyncClient, world: World, statement_counter: StatementCounter
) -> None:
    token = await machine_token(live, world)
    query = {"query": "{ viewer { subject scopes } }"}  # answered without any table
    assert (await live.post("/graphql", json=query, headers=bearer(token))).status_code == 200
    statement_counter.reset()
    response = await live.post("/graphql", json=query, headers=bearer(token))
    assert response.json()["data"]["viewer"]["subject"] == world.clients["machine"].client_id
    assert not [s for s in statement_counter.statements if "oauth" in s or "user_regions" in s]


@pytest.mark.only_backend("postgresql")
async def test_without_its_notification_connection_a_worker_checks_the_database_every_time(
    app: Starlette, web: httpx.AsyncClient, world: World, statement_counter: StatementCounter
) -> None:
    token = await machine_token(web, world)
    assert (await probe(web, token)).status_code == 200
    statement_counter.reset()
    assert (await probe(web, token)).status_code == 200  # never subscribed: nothing remembered is trusted
    assert statement_counter.count > 0

    async with app.router.lifespan_context(app):
        await probe(web, token)
        statement_counter.reset()
        assert (await probe(web, token)).status_code == 200
        assert statement_counter.count == 0
        channel = views(app).channel
        assert isinstance(channel, listeners.Listener)
        channel._lost()  # what a dropped connection or an unanswered heartbeat does
        assert (await probe(web, token)).status_code == 200
        assert statement_counter.count > 0


@pytest.mark.only_backend("sqlite")
async def test_on_sqlite_a_verdict_is_trusted_for_a_second_at_most(
    live: httpx.AsyncClient, world: World, statement_counter: StatementCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change from another process (the CLI) cannot notify a SQLite server: it shows within the second."""
    token = await machine_token(live, world)
    await probe(live, token)
    monkeypatch.setattr(listeners, "LOCAL_TRUST_SECONDS", 0.0)
    statement_counter.reset()
    assert (await probe(live, token)).status_code == 200
    assert statement_counter.count > 0


async def test_revoking_a_token_refuses_it_at_once(live: httpx.AsyncClient, world: World) -> None:
    token = await machine_token(live, world)
    assert (await probe(live, token)).status_code == 200
    machine = world.clients["machine"]
    revoked = await live.post("/oauth/revoke", data={"token": token}, auth=(machine.client_id, machine.client_secret))
    assert revoked.status_code == 200
    refused = await probe(live, token)
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]


async def test_revoking_a_refresh_token_refuses_its_access_token_at_once(live: httpx.AsyncClient, world: World) -> None:
    tokens = await person_tokens(live, world.people["admin"].email)
    assert (await probe(live, tokens["access_token"])).status_code == 200
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": "programme-explorer"}
    assert (await live.post("/oauth/revoke", data=data)).status_code == 200
    assert (await probe(live, tokens["access_token"])).status_code == 401


async def test_disabling_a_client_refuses_its_tokens_at_once_and_enabling_restores_them(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    token = await machine_token(live, world)
    assert (await probe(live, token)).status_code == 200
    await admin.operator_set_client_enabled(db, machine.client_id, False)
    await db.commit()
    refused = await probe(live, token)
    assert refused.status_code == 401
    assert "client is no longer valid" in refused.headers["www-authenticate"]
    assert (await client_credentials(live, machine)).status_code == 401
    await admin.operator_set_client_enabled(db, machine.client_id, True)
    await db.commit()
    assert (await probe(live, token)).status_code == 200
    changed = sa.select(AuditEvent.details).where(AuditEvent.action == admin.CLIENT_CHANGED)
    actions = list(await db.scalars(changed.order_by(AuditEvent.occurred_at)))
    assert actions == [{"enabled": False}, {"enabled": True}]


async def test_narrowing_a_clients_regions_and_scopes_applies_to_its_tokens_at_once(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    await admin.operator_set_client_regions(db, machine.client_id, ["north", "south"])
    await db.commit()
    token = await machine_token(live, world)
    before: dict[str, Any] = (await probe(live, token)).json()
    assert before["region_ids"] == sorted([str(world.north.id), str(world.south.id)])
    await admin.operator_set_client_regions(db, machine.client_id, ["south"])
    await admin.operator_set_client_scopes(db, machine.client_id, "programme:read")
    await db.commit()
    after: dict[str, Any] = (await probe(live, token)).json()
    assert after["region_ids"] == [str(world.south.id)]
    assert after["scopes"] == ["programme:read"]


async def test_a_rolled_back_change_drops_nothing(
    live: httpx.AsyncClient, world: World, db: AsyncSession, statement_counter: StatementCounter
) -> None:
    token = await machine_token(live, world)
    await probe(live, token)
    await admin.operator_set_client_enabled(db, world.clients["machine"].client_id, False)
    await db.rollback()
    statement_counter.reset()
    assert (await probe(live, token)).status_code == 200
    assert statement_counter.count == 0


async def test_disabling_a_person_or_changing_their_role_or_regions_applies_at_once(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    person = world.people["coordinator"]
    tokens = await person_tokens(live, person.email)
    first = (await probe(live, tokens["access_token"])).json()
    assert first["region_ids"] == [str(world.north.id)]
    await admin.operator_set_user_regions(db, person.email, ["south"])
    await db.commit()
    assert (await probe(live, tokens["access_token"])).json()["region_ids"] == [str(world.south.id)]
    await admin.operator_set_user_role(db, person.email, "facilitator")
    await db.commit()
    assert (await probe(live, tokens["access_token"])).json()["role"] == "facilitator"
    await admin.operator_set_user_active(db, person.email, False)
    await db.commit()
    assert (await probe(live, tokens["access_token"])).status_code == 401


async def test_a_known_client_gets_a_token_in_one_statement(
    live: httpx.AsyncClient, world: World, statement_counter: StatementCounter, backend: str
) -> None:
    """The client comes from the worker's view; the token row and its audit event are one write."""
    machine = world.clients["machine"]
    await machine_token(live, world)
    statement_counter.reset()
    response = await client_credentials(live, machine, scope="programme:read")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"token_type", "access_token", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "programme:read")
    written = [s.split()[0].upper() for s in statement_counter.statements]
    assert written == (["WITH"] if backend == "postgresql" else ["INSERT", "INSERT"])
    principal = (await probe(live, body["access_token"])).json()
    assert principal["scopes"] == ["programme:read"]
    assert principal["region_ids"] == [str(world.north.id)]


async def test_the_token_endpoint_sees_a_changed_or_disabled_client_at_once(
    live: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    await machine_token(live, world)
    await admin.operator_set_client_scopes(db, machine.client_id, "programme:read")
    await db.commit()
    narrowed = await client_credentials(live, machine, scope="attendance:write")
    assert narrowed.status_code == 400
    assert narrowed.json()["error"] == "invalid_scope"
    await admin.operator_set_client_enabled(db, machine.client_id, False)
    await db.commit()
    refused = await client_credentials(live, machine)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.only_backend("postgresql")
async def test_a_worker_whose_listener_connection_dies_checks_the_database_until_it_has_resubscribed(
    running: Starlette,
    live: httpx.AsyncClient,
    world: World,
    statement_counter: StatementCounter,
    migrated_database: MigratedDatabase,
) -> None:
    token = await machine_token(live, world)
    await probe(live, token)
    channel = views(running).channel
    assert isinstance(channel, listeners.Listener)
    async with migrated_database.engine.connect() as connection:
        killed = await connection.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": listeners.APPLICATION_NAME},
        )
    assert killed == 1
    await wait_for(lambda: not channel.healthy)
    statement_counter.reset()
    assert (await probe(live, token)).status_code == 200
    assert statement_counter.count > 0  # nothing remembered is trusted while deaf

    await wait_for(lambda: channel.healthy)  # reconnected and subscribed again
    statement_counter.reset()
    assert (await probe(live, token)).status_code == 200
    assert statement_counter.count > 0  # what was remembered before was dropped on resubscription
    statement_counter.reset()
    assert (await probe(live, token)).status_code == 200
    assert statement_counter.count == 0


@pytest.mark.only_backend("postgresql")
async def test_a_listener_is_healthy_only_while_its_own_notifications_come_back(
    migrated_database: MigratedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that runs queries but hears no notifications (LISTEN behind a transaction pooler) must
    not count as listening: the heartbeat is a notification to itself."""
    listener = listeners.PostgresListener(migrated_database.engine)
    await listener.start()
    try:
        await wait_for(lambda: listener.healthy)
        monkeypatch.setattr(listener, "_heard", lambda: None)  # its notifications stop arriving
        await wait_for(lambda: not listener.healthy, listeners.HEALTHY_WINDOW_SECONDS + 2)
        assert not listener.trusts(listener.subscribed_at + 0.001)
    finally:
        await listener.stop()

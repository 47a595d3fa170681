"""The sign-in throttle under a burst, with and without Redis, and whose address it counts.

A burst of simultaneous wrong passwords for one email must not outrun the limit: counting and deciding are
one atomic step, so at most ``MAX_FAILURES`` of them reach the password check. Forwarded headers name the
client only when the peer is listed in ``FORWARDED_ALLOW_IPS``; otherwise rotating ``X-Forwarded-For`` from
the same peer does not reset the count.
"""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette

from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.models import Role
from programme_api.oauth.service import build_service
from programme_api.oauth.throttle import MAX_FAILURES, RedisThrottle

from .conftest import MigratedDatabase, as_app_role, migrate
from .factories import make_organisation
from .oauth_support import (
    ISSUER,
    PASSWORD,
    World,
    app,
    build_app,
    hidden_value,
    make_person,
    oauth_settings,
    redis_client,
    settings,
    sign_in,
    web,
    world,
)

BURST = 20


@pytest.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[tuple[Settings, Any, str]]:
    """An app on a database of its own (a burst needs real concurrent units of work, not the tests' shared
    connection), with one person in it: the settings, the engine and the person's email."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'burst.db'}"
    engine = create_engine(Settings(database_url=url))
    await migrate(engine)
    async with session_factory(engine)() as db:
        organisation = await make_organisation(db)
        person = await make_person(db, organisation, Role.COORDINATOR)
        await db.commit()
    yield oauth_settings(url, tmp_path / "keys.json"), engine, person.email
    await engine.dispose()


async def burst(app: Starlette, email: str) -> list[int]:
    """``BURST`` simultaneous sign-ins with a wrong password from one browser address; their status codes."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        page = await http.get("/login")
        form = {"email": email, "password": "wrong guess", "csrf": hidden_value(page.text, "csrf")}
        responses = await asyncio.gather(*(http.post("/login", data=form) for _ in range(BURST)))
    return sorted(response.status_code for response in responses)


async def test_a_burst_of_wrong_passwords_checks_at_most_the_limit(own_database: tuple[Settings, Any, str]) -> None:
    settings, engine, email = own_database
    codes = await burst(build_app(settings, engine), email)
    assert codes == [400] * MAX_FAILURES + [429] * (BURST - MAX_FAILURES)


async def test_a_burst_through_redis_checks_at_most_the_limit(
    own_database: tuple[Settings, Any, str], redis_client: Redis
) -> None:
    settings, engine, email = own_database
    app = build_app(settings, engine)
    prefix = f"test-{secrets.token_hex(6)}:"
    app.state.oauth_service = build_service(settings)
    app.state.oauth_service.throttle = RedisThrottle(redis_client, prefix=prefix)
    try:
        codes = await burst(app, email)
        assert codes == [400] * MAX_FAILURES + [429] * (BURST - MAX_FAILURES)
        keys = await redis_client.keys(prefix + "*")
        assert len(keys) == 1
        assert await redis_client.get(keys[0]) == str(BURST).encode()
    finally:
        for key in await redis_client.keys(prefix + "*"):
            await redis_client.delete(key)


async def _fail_then_sign_in(http: httpx.AsyncClient, email: str) -> httpx.Response:
    """Five wrong passwords and then the right one, each from a different ``X-Forwarded-For``."""
    for attempt in range(MAX_FAILURES):
        http.headers["X-Forwarded-For"] = f"198.51.100.{attempt + 1}"
        assert (await sign_in(http, email, "wrong guess")).status_code == 400
    http.headers["X-Forwarded-For"] = "198.51.100.99"
    return await sign_in(http, email, PASSWORD)


async def test_rotating_x_forwarded_for_does_not_reset_the_count(web: httpx.AsyncClient, world: World) -> None:
    """By default no peer is trusted, not even loopback: the count stays with the TCP peer's address."""
    response = await _fail_then_sign_in(web, world.people["coordinator"].email)
    assert response.status_code == 429


async def test_forwarded_for_from_a_listed_proxy_names_the_client(
    settings: Settings, migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection,
    world: World,
) -> None:  # fmt: skip
    """From a peer in ``FORWARDED_ALLOW_IPS`` the header is believed: each forwarded address is its own count."""
    trusted = settings.model_copy(update={"forwarded_allow_ips": ["127.0.0.1"]})
    served = as_app_role(build_app(trusted, migrated_database.engine, session_maker), migrated_database.backend,
                         connection)  # fmt: skip
    transport = httpx.ASGITransport(app=served, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        response = await _fail_then_sign_in(http, world.people["coordinator"].email)
    assert response.status_code == 303

"""Concurrent replays on PostgreSQL: of two simultaneous uses of one refresh token or code, at most one wins.

The shared test connection serialises everything, so these tests get their own database with committed data
and an engine whose pool gives each request its own connection, as production workers have.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from programme_api.config import Settings
from programme_api.db import create_engine, session_factory
from programme_api.domain.models import OAuthToken, Role
from programme_api.oauth.clients import EXPLORER_CLIENT_ID

from .conftest import drop_postgres_database, empty_database_url, migrate
from .factories import make_organisation
from .oauth_support import (
    EXPLORER_REDIRECT,
    ISSUER,
    bearer,
    build_app,
    exchange,
    get_code,
    make_person,
    oauth_settings,
    person_tokens,
    pkce_pair,
    refresh,
    sign_in,
)


@dataclass
class Committed:
    web: httpx.AsyncClient
    email: str
    settings: Settings


@pytest.fixture(params=["postgresql"])
async def committed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Committed]:
    url = await empty_database_url(request.param, tmp_path, "oauth_race")
    engine = create_engine(Settings(database_url=url), pool_size=6)
    try:
        await migrate(engine)
        async with session_factory(engine)() as db:
            organisation = await make_organisation(db)
            person = await make_person(db, organisation, Role.COORDINATOR)
            await db.commit()
        settings = oauth_settings(url, tmp_path / "keys.json")
        app = build_app(settings, engine)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as web:
            yield Committed(web, person.email, settings)
    finally:
        await engine.dispose()
        await drop_postgres_database(make_url(url).database or "")


async def test_two_concurrent_refreshes_at_most_one_succeeds(committed: Committed) -> None:
    web = committed.web
    for _ in range(4):
        token = await person_tokens(web, committed.email)
        results = await asyncio.gather(*(refresh(web, token["refresh_token"]) for _ in range(2)))
        statuses = sorted(response.status_code for response in results)
        assert statuses.count(200) <= 1
        assert statuses[-1] == 400
        assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
        for response in results:
            if response.status_code == 200:  # the loser looked like a replay: the whole family is revoked
                assert (await web.get("/_probe", headers=bearer(response.json()))).status_code == 401


async def test_two_concurrent_code_exchanges_at_most_one_succeeds(committed: Committed) -> None:
    web = committed.web
    await sign_in(web, committed.email)
    for _ in range(4):
        verifier, challenge = pkce_pair()
        code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
        results = await asyncio.gather(
            *(exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT) for _ in range(2))
        )
        assert sorted(response.status_code for response in results).count(200) <= 1


async def test_the_loser_of_a_race_leaves_no_live_token_behind(committed: Committed) -> None:
    token = await person_tokens(committed.web, committed.email)
    await asyncio.gather(*(refresh(committed.web, token["refresh_token"]) for _ in range(3)))
    engine = create_engine(committed.settings)
    async with engine.connect() as connection:
        live = await connection.scalar(
            sa.select(sa.func.count()).select_from(OAuthToken).where(OAuthToken.revoked_at.is_(None))
        )
    await engine.dispose()
    assert live == 0

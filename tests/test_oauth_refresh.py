"""Refresh tokens: rotation, reuse detection that revokes the family, and scope that can only narrow."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import OAuthToken, Role, User, utcnow
from programme_api.domain.principal import ROLE_SCOPES
from programme_api.oauth.clients import EXPLORER_CLIENT_ID

from .oauth_support import (
    ISSUER,
    World,
    app,
    audit_actions,
    bearer,
    counts,
    person_tokens,
    refresh,
    settings,
    web,
    world,
)


async def test_refresh_rotates_and_the_old_refresh_token_is_spent(web: httpx.AsyncClient, world: World) -> None:
    first = await person_tokens(web, world.people["coordinator"].email)
    second = await refresh(web, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    assert rotated["expires_in"] == 900
    assert (await web.get("/_probe", headers=bearer(rotated))).status_code == 200
    third = await refresh(web, rotated["refresh_token"])
    assert third.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    first = await person_tokens(web, world.people["coordinator"].email)
    rotated = (await refresh(web, first["refresh_token"])).json()

    reuse = await refresh(web, first["refresh_token"])  # a thief (or a confused client) replays the old one
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"

    assert (await web.get("/_probe", headers=bearer(rotated))).status_code == 401
    assert (await refresh(web, rotated["refresh_token"])).status_code == 400
    live = await db.scalar(
        sa.select(sa.func.count())
        .select_from(OAuthToken)
        .where(OAuthToken.user_id == world.people["coordinator"].id, OAuthToken.revoked_at.is_(None))
    )
    assert live == 0
    assert "oauth.refresh_token_reused" in await audit_actions(db, world.org_a.id)


async def test_refresh_may_narrow_but_never_widen_the_scope(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    first = await person_tokens(web, world.people["admin"].email, scope="programme:read participants:read")
    before = await counts(db)
    for scope in ("programme:read admin", "programme:write", "no-such-scope"):
        widened = await refresh(web, first["refresh_token"], scope=scope)
        assert widened.status_code == 400
        assert widened.json()["error"] == "invalid_scope"
    assert await counts(db) == before

    narrowed = await refresh(web, first["refresh_token"], scope="programme:read")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "programme:read"
    # the rotated token carries the narrowed scope, so it cannot widen back either
    again = await refresh(web, narrowed.json()["refresh_token"], scope="participants:read")
    assert again.json()["error"] == "invalid_scope"


async def test_another_client_cannot_use_the_refresh_token(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    first = await person_tokens(web, world.people["admin"].email)
    before = await counts(db)
    stolen = await refresh(web, first["refresh_token"], client_id=world.clients["spa"].client_id)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert await counts(db) == before
    assert (await refresh(web, first["refresh_token"])).status_code == 200


async def test_a_role_change_narrows_the_next_refresh(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    person = world.people["admin"]
    first = await person_tokens(web, person.email)
    assert "admin" in first["scope"].split()
    await db.execute(sa.update(User).where(User.id == person.id).values(role=Role.FACILITATOR))
    await db.commit()
    principal = (await web.get("/_probe", headers=bearer(first))).json()
    assert set(principal["scopes"]) <= ROLE_SCOPES[Role.FACILITATOR]  # the principal follows the current role
    refreshed = (await refresh(web, first["refresh_token"])).json()
    assert set(refreshed["scope"].split()) <= ROLE_SCOPES[Role.FACILITATOR]


async def test_a_deactivated_person_can_neither_refresh_nor_use_tokens(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    person = world.people["coordinator"]
    first = await person_tokens(web, person.email)
    await db.execute(sa.update(User).where(User.id == person.id).values(is_active=False))
    await db.commit()
    before = await counts(db)
    assert (await web.get("/_probe", headers=bearer(first))).status_code == 401
    refused = await refresh(web, first["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert await counts(db) == before


async def test_an_expired_refresh_token_is_refused(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    first = await person_tokens(web, world.people["coordinator"].email)
    await db.execute(
        sa.update(OAuthToken)
        .where(OAuthToken.user_id == world.people["coordinator"].id)
        .values(refresh_expires_at=utcnow() - timedelta(seconds=1))
    )
    await db.commit()
    response = await refresh(web, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_revoking_a_refresh_token_ends_the_grant(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    first = await person_tokens(web, world.people["coordinator"].email)
    revoked = await web.post(
        "/oauth/revoke",
        data={"token": first["refresh_token"], "token_type_hint": "refresh_token", "client_id": EXPLORER_CLIENT_ID},
    )
    assert revoked.status_code == 200
    assert (await web.get("/_probe", headers=bearer(first))).status_code == 401
    assert (await refresh(web, first["refresh_token"])).status_code == 400
    assert "oauth.token_revoked" in await audit_actions(db, world.org_a.id)


async def test_authlibs_client_refreshes_with_rotation(app: Starlette, web: httpx.AsyncClient, world: World) -> None:
    first = await person_tokens(web, world.people["coordinator"].email)
    async with AsyncOAuth2Client(
        client_id=EXPLORER_CLIENT_ID,
        token_endpoint_auth_method="none",
        token=first,
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        rotated = await oauth.refresh_token(f"{ISSUER}/oauth/token", refresh_token=first["refresh_token"])
    assert rotated["refresh_token"] != first["refresh_token"]
    assert (await web.get("/_probe", headers=bearer(rotated["access_token"]))).status_code == 200

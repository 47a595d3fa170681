"""The authorization code grant with PKCE: the explorer, consent, and the attacks on codes and redirects."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import OAuthAuthorizationCode, OAuthClient, OAuthToken, Role, utcnow
from programme_api.domain.principal import ROLE_SCOPES
from programme_api.oauth.clients import EXPLORER_CLIENT_ID, explorer_anchor_id

from .oauth_support import (
    APP_REDIRECT,
    EXPLORER_REDIRECT,
    ISSUER,
    World,
    app,
    audit_actions,
    authorize_params,
    counts,
    exchange,
    get_code,
    hidden_value,
    pkce_pair,
    query_of,
    settings,
    sign_in,
    web,
    world,
)


async def test_explorer_flow_with_authlibs_client_gives_the_role_scopes_and_a_principal(
    app: Starlette, web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    coordinator = world.people["coordinator"]
    assert (await sign_in(web, coordinator.email)).status_code == 303
    verifier, _ = pkce_pair()
    async with AsyncOAuth2Client(
        client_id=EXPLORER_CLIENT_ID,
        token_endpoint_auth_method="none",
        redirect_uri=EXPLORER_REDIRECT,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        url, _state = oauth.create_authorization_url(f"{ISSUER}/oauth/authorize", code_verifier=verifier)
        approved = await web.get(url)  # the signed-in browser; the explorer is approved without a consent page
        assert approved.status_code == 302
        location = approved.headers["location"]
        assert location.startswith(f"{EXPLORER_REDIRECT}?")
        token = await oauth.fetch_token(
            f"{ISSUER}/oauth/token", authorization_response=location, code_verifier=verifier
        )

    assert set(token["scope"].split()) == ROLE_SCOPES[Role.COORDINATOR]
    assert token["expires_in"] == 900  # a person's token: at most 15 minutes
    assert token["refresh_token"]
    claims = jwt.decode(
        token["access_token"], KeySet.import_key_set((await web.get("/.well-known/jwks.json")).json())
    ).claims
    assert claims["sub"] == str(coordinator.id)
    assert claims["client_id"] == EXPLORER_CLIENT_ID

    principal = (await web.get("/_probe", headers={"Authorization": f"Bearer {token['access_token']}"})).json()
    assert principal["organisation_id"] == str(world.org_a.id)
    assert principal["role"] == "coordinator"
    assert principal["region_ids"] == [str(world.north.id)]
    assert principal["actor_type"] == "user"
    anchor = await db.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == explorer_anchor_id(world.org_a.id)))
    assert anchor is not None
    assert anchor.organisation_id == world.org_a.id


async def test_a_person_who_is_not_signed_in_is_sent_to_login_and_back(web: httpx.AsyncClient, world: World) -> None:
    _verifier, challenge = pkce_pair()
    params = authorize_params(EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    first = await web.get("/oauth/authorize", params=params)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize%3F")

    next_path = query_of(first.headers["location"])["next"]
    signed_in = await sign_in(web, world.people["admin"].email, next_path=next_path)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == next_path
    back = await web.get(next_path)
    assert back.status_code == 302
    assert "code" in query_of(back.headers["location"])


async def test_consent_page_then_approval_gives_tokens_to_a_confidential_client(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    params = authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge, scope="programme:read")
    page = await web.get("/oauth/authorize", params=params)
    assert page.status_code == 200
    assert "Booking app" in page.text
    assert "programme:read" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" not in page.text

    approved = await web.post(
        "/oauth/authorize", data={**params, "csrf": hidden_value(page.text, "csrf"), "decision": "approve"}
    )
    assert approved.status_code == 302
    code = query_of(approved.headers["location"])["code"]
    response = await exchange(web, world.clients["web"], code, verifier, APP_REDIRECT)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "programme:read"
    assert "oauth.token_issued" in await audit_actions(db, world.org_a.id)


async def test_denying_consent_redirects_with_access_denied_and_writes_nothing(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    _, challenge = pkce_pair()
    params = authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge)
    page = await web.get("/oauth/authorize", params=params)
    before = await counts(db)
    denied = await web.post(
        "/oauth/authorize", data={**params, "csrf": hidden_value(page.text, "csrf"), "decision": "deny"}
    )
    assert denied.status_code == 302
    error = query_of(denied.headers["location"])
    assert error["error"] == "access_denied"
    assert error["state"] == "st-123"
    assert "code" not in error
    assert await counts(db) == before


async def test_consent_without_the_sessions_csrf_value_is_refused(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    _, challenge = pkce_pair()
    params = authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge)
    before = await counts(db)
    for csrf in ("", "forged"):
        forged = await web.post("/oauth/authorize", data={**params, "csrf": csrf, "decision": "approve"})
        assert forged.status_code == 400
        assert "location" not in forged.headers
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        ({}, "PKCE is required"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "S256"),
        ({"code_challenge": "x" * 43}, "S256"),  # method omitted means plain
    ],
)
async def test_authorization_without_s256_pkce_is_refused(
    web: httpx.AsyncClient, world: World, db: AsyncSession, extra: dict[str, str], description: str
) -> None:
    await sign_in(web, world.people["admin"].email)
    before = await counts(db)
    for client_id, redirect in (
        (EXPLORER_CLIENT_ID, EXPLORER_REDIRECT),
        (world.clients["web"].client_id, APP_REDIRECT),
    ):
        response = await web.get("/oauth/authorize", params=authorize_params(client_id, redirect, None, **extra))
        assert response.status_code == 302
        error = query_of(response.headers["location"])
        assert error["error"] == "invalid_request"
        assert description in error["error_description"]
        assert error["state"] == "st-123"
    assert await counts(db) == before


async def test_wrong_or_missing_verifier_is_refused_and_the_code_stays_unused(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    before = await counts(db)

    wrong = await exchange(web, EXPLORER_CLIENT_ID, code, pkce_pair()[0], EXPLORER_REDIRECT)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    missing = await exchange(web, EXPLORER_CLIENT_ID, code, None, EXPLORER_REDIRECT)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert await counts(db) == before

    assert (await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)).status_code == 200


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    first = (await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)).json()
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await web.get("/_probe", headers=bearer)).status_code == 200

    replay = await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (await web.get("/_probe", headers=bearer)).status_code == 401
    refresh = await web.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": EXPLORER_CLIENT_ID},
    )
    assert refresh.status_code == 400
    assert "oauth.authorization_code_replayed" in await audit_actions(db, world.org_a.id)


async def test_an_expired_code_is_refused(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    row = await db.scalar(sa.select(OAuthAuthorizationCode).order_by(OAuthAuthorizationCode.created_at.desc()))
    assert row is not None
    assert row.expires_at - row.created_at <= timedelta(seconds=60)
    assert code not in (row.code_hash,)  # stored hashed
    row.expires_at = utcnow() - timedelta(seconds=1)
    await db.commit()
    response = await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        APP_REDIRECT + "/",
        APP_REDIRECT + "?next=/admin",
        APP_REDIRECT + "#fragment",
        APP_REDIRECT.replace("https://", "http://"),
        APP_REDIRECT.replace("partner.example", "PARTNER.example"),
        APP_REDIRECT.replace("partner.example", "partner.example.evil.test"),
        "https://evil.test/callback",
        "",
    ],
)
async def test_redirect_uris_must_match_exactly_and_failures_never_redirect(
    web: httpx.AsyncClient, world: World, db: AsyncSession, redirect_uri: str
) -> None:
    await sign_in(web, world.people["admin"].email)
    _, challenge = pkce_pair()
    params = authorize_params(world.clients["web"].client_id, redirect_uri, challenge)
    if not redirect_uri:
        del params["redirect_uri"]
    before = await counts(db)
    response = await web.get("/oauth/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "cannot continue" in response.text
    assert await counts(db) == before


async def test_the_token_request_must_repeat_the_same_redirect_uri(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    before = await counts(db)
    for variant in (EXPLORER_REDIRECT + "/", f"{ISSUER}/other", None):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": EXPLORER_CLIENT_ID,
            "code_verifier": verifier,
        }
        if variant is not None:
            data["redirect_uri"] = variant
        response = await web.post("/oauth/token", data=data)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
    assert await counts(db) == before


async def test_unknown_client_gets_an_error_page_not_a_redirect(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, world.people["admin"].email)
    _, challenge = pkce_pair()
    response = await web.get("/oauth/authorize", params=authorize_params("no-such-client", APP_REDIRECT, challenge))
    assert response.status_code == 400
    assert "location" not in response.headers
    anchor = await web.get(
        "/oauth/authorize", params=authorize_params(explorer_anchor_id(world.org_a.id), EXPLORER_REDIRECT, challenge)
    )
    assert anchor.status_code == 400  # anchor rows are not clients


async def test_a_code_issued_to_one_client_cannot_be_redeemed_by_another(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, world.clients["spa"].client_id, APP_REDIRECT, challenge)
    before = await counts(db)
    stolen = await exchange(web, world.clients["web"], code, verifier, APP_REDIRECT)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert await counts(db) == before
    assert (await exchange(web, world.clients["spa"], code, verifier, APP_REDIRECT)).status_code == 200


async def test_public_client_redeems_without_secret_and_gets_browser_lifetime(
    web: httpx.AsyncClient, world: World
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, world.clients["spa"].client_id, APP_REDIRECT, challenge)
    token = (await exchange(web, world.clients["spa"], code, verifier, APP_REDIRECT)).json()
    assert token["expires_in"] == 900
    assert token["scope"] == "programme:read"


async def test_confidential_client_must_authenticate_at_the_token_endpoint(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, world.clients["web"].client_id, APP_REDIRECT, challenge)
    before = await counts(db)
    anonymous = await exchange(web, world.clients["web"].client_id, code, verifier, APP_REDIRECT)
    assert anonymous.status_code in (400, 401)
    assert anonymous.json()["error"] == "invalid_client"
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier}
    wrong = await web.post("/oauth/token", data=data, auth=(world.clients["web"].client_id, "wrong-secret"))
    assert wrong.status_code == 401
    assert await counts(db) == before


async def test_scopes_are_cut_to_the_role_and_escalation_is_refused(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["facilitator"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge, scope="programme:read admin")
    token = (await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)).json()
    assert token["scope"] == "programme:read"  # admin is not a facilitator's

    before = await counts(db)
    only_admin = await web.get(
        "/oauth/authorize", params=authorize_params(EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge, scope="admin")
    )
    assert query_of(only_admin.headers["location"])["error"] == "invalid_scope"
    outside_client = await web.get(
        "/oauth/authorize",
        params=authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge, scope="surveys:read"),
    )
    assert query_of(outside_client.headers["location"])["error"] == "invalid_scope"
    unknown = await web.get(
        "/oauth/authorize", params=authorize_params(EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge, scope="root")
    )
    assert query_of(unknown.headers["location"])["error"] == "invalid_scope"
    assert await counts(db) == before


async def test_a_person_cannot_authorize_another_organisations_client(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin_b"].email)
    _, challenge = pkce_pair()
    before = await counts(db)
    response = await web.get(
        "/oauth/authorize", params=authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge)
    )
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "access_denied"
    assert await counts(db) == before


async def test_the_explorer_acts_in_the_signed_in_persons_organisation(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await sign_in(web, world.people["admin_b"].email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, EXPLORER_CLIENT_ID, EXPLORER_REDIRECT, challenge)
    token = (await exchange(web, EXPLORER_CLIENT_ID, code, verifier, EXPLORER_REDIRECT)).json()
    principal = (await web.get("/_probe", headers={"Authorization": f"Bearer {token['access_token']}"})).json()
    assert principal["organisation_id"] == str(world.org_b.id)
    assert principal["region_ids"] is None  # an org admin reaches the whole organisation
    assert set(principal["scopes"]) == ROLE_SCOPES[Role.ORG_ADMIN]
    row = await db.scalar(sa.select(OAuthToken).where(OAuthToken.user_id == world.people["admin_b"].id))
    assert row is not None
    assert row.organisation_id == world.org_b.id

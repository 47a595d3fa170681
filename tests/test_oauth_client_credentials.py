"""Metadata, JWKS, the client credentials grant, revocation and introspection, through HTTP."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import AuditEvent, OAuthClient, OAuthToken
from programme_api.domain.passwords import hash_secret
from programme_api.oauth import admin, routes

from .oauth_support import (
    ISSUER,
    World,
    app,
    audit_actions,
    client_credentials,
    counts,
    settings,
    web,
    world,
)


async def test_metadata_describes_the_server_and_validates_as_rfc8414(web: httpx.AsyncClient) -> None:
    response = await web.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    AuthorizationServerMetadata(metadata).validate()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert "implicit" not in metadata["grant_types_supported"]
    assert "password" not in metadata["grant_types_supported"]
    assert metadata["protected_resources"] == [f"{ISSUER}/graphql"]


async def test_jwks_publishes_only_public_es256_keys(web: httpx.AsyncClient) -> None:
    response = await web.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "EC"
    assert keys[0]["alg"] == "ES256"
    assert keys[0]["use"] == "sig"
    assert keys[0]["kid"]
    assert "d" not in keys[0]  # no private part


async def test_client_credentials_issues_an_rfc9068_token_through_authlibs_client(
    app: Starlette, web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    async with AsyncOAuth2Client(
        client_id=machine.client_id,
        client_secret=machine.client_secret,
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        token = await oauth.fetch_token(f"{ISSUER}/oauth/token", grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert "refresh_token" not in token
    assert token["expires_in"] == 3600  # machine client acting for itself: at most 60 minutes
    assert set(token["scope"].split()) == {"programme:read", "attendance:write"}

    jwks = KeySet.import_key_set((await web.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token["access_token"], jwks, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == jwks.keys[0].kid
    claims = decoded.claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == f"{ISSUER}/graphql"
    assert claims["sub"] == machine.client_id
    assert claims["client_id"] == machine.client_id
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]

    row = await db.scalar(sa.select(OAuthToken).where(OAuthToken.jti == claims["jti"]))
    assert row is not None
    assert row.refresh_token_hash is None
    assert row.user_id is None
    assert "oauth.token_issued" in await audit_actions(db, world.org_a.id)


async def test_client_secret_post_works_and_requested_scope_is_narrowed(web: httpx.AsyncClient, world: World) -> None:
    machine = world.clients["machine"]
    response = await web.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": machine.client_id,
            "client_secret": machine.client_secret or "",
            "scope": "programme:read",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "programme:read"


async def test_a_plain_client_credentials_request_is_answered_without_the_general_server(
    web: httpx.AsyncClient, world: World, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case stays on its short path on both databases, also as the service's non-owner role (under
    row-level security the client is read under its own organisation's binding); the general server is only
    for what the short path does not take."""

    async def general_server(*_args: object) -> None:
        raise AssertionError("the general authorization server answered a plain client-credentials request")

    jwks = KeySet.import_key_set((await web.get("/.well-known/jwks.json")).json())
    monkeypatch.setattr(routes, "_protocol_response", general_server)
    client = world.clients["machine"]
    for _ in range(2):  # the first reads the client from the database, the second from the worker's view
        response = await client_credentials(web, client)
        assert response.status_code == 200, response.text
        jti = jwt.decode(response.json()["access_token"], jwks, algorithms=["ES256"]).claims["jti"]
        assert await db.scalar(sa.select(sa.func.count()).select_from(OAuthToken).where(OAuthToken.jti == jti)) == 1


async def test_scope_escalation_at_the_token_endpoint_is_refused_and_writes_nothing(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    before = await counts(db)
    for scope in ("programme:read participants:read", "admin", "no-such-scope"):
        response = await client_credentials(web, world.clients["machine"], scope=scope)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_scope"
    assert await counts(db) == before


async def test_wrong_client_secret_is_refused_and_writes_nothing(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    before = await counts(db)
    response = await web.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(machine.client_id, "not-the-secret")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    unknown = await web.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "x"))
    assert unknown.status_code == 401
    assert await counts(db) == before


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer"])
async def test_grants_other_than_the_three_are_unsupported(
    web: httpx.AsyncClient, world: World, grant_type: str
) -> None:
    machine = world.clients["machine"]
    data = {"grant_type": grant_type, "username": "x", "password": "y"}
    response = await web.post("/oauth/token", data=data, auth=(machine.client_id, machine.client_secret or ""))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_public_clients_cannot_use_client_credentials(web: httpx.AsyncClient, world: World) -> None:
    spa = world.clients["spa"]
    response = await web.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": spa.client_id})
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_client", "unauthorized_client")


async def test_secrets_are_stored_only_as_hashes(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    machine = world.clients["machine"]
    assert machine.client_secret is not None
    assert len(machine.client_secret) >= 43
    row = await db.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == machine.client_id))
    assert row is not None
    assert row.client_secret_hash == hash_secret(machine.client_secret)
    assert machine.client_secret not in str(row.client_secret_hash)
    token = (await client_credentials(web, machine)).json()["access_token"]
    dumped = " ".join(str(value) for value in (await db.execute(sa.select(OAuthToken.__table__))).all())
    assert token not in dumped
    assert machine.client_secret not in dumped


async def test_revocation_stops_the_token_at_once_and_is_audited(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    token = (await client_credentials(web, machine)).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await web.get("/_probe", headers=bearer)).status_code == 200

    response = await web.post(
        "/oauth/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=(machine.client_id, machine.client_secret or ""),
    )
    assert response.status_code == 200

    refused = await web.get("/_probe", headers=bearer)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "oauth.token_revoked" in await audit_actions(db, world.org_a.id)


async def test_another_client_cannot_revoke_a_token(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    token = (await client_credentials(web, world.clients["machine"])).json()["access_token"]
    other = world.clients["machine_b"]
    before = await counts(db)
    response = await web.post("/oauth/revoke", data={"token": token}, auth=(other.client_id, other.client_secret or ""))
    assert response.status_code == 400
    assert await counts(db) == before
    assert (await web.get("/_probe", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_revoking_an_unknown_token_answers_200_and_changes_nothing(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    before = await counts(db)
    response = await web.post(
        "/oauth/revoke", data={"token": "garbage"}, auth=(machine.client_id, machine.client_secret or "")
    )
    assert response.status_code == 200
    assert await counts(db) == before


async def test_introspection_reports_own_tokens_and_inactive_after_revocation(
    web: httpx.AsyncClient, world: World
) -> None:
    machine = world.clients["machine"]
    auth = (machine.client_id, machine.client_secret or "")
    token = (await client_credentials(web, machine)).json()["access_token"]

    active = (await web.post("/oauth/introspect", data={"token": token}, auth=auth)).json()
    assert active["active"] is True
    assert active["client_id"] == machine.client_id
    assert active["aud"] == f"{ISSUER}/graphql"
    assert set(active["scope"].split()) == {"programme:read", "attendance:write"}

    other = world.clients["machine_b"]
    foreign = await web.post(
        "/oauth/introspect", data={"token": token}, auth=(other.client_id, other.client_secret or "")
    )
    assert foreign.json() == {"active": False}

    await web.post("/oauth/revoke", data={"token": token}, auth=auth)
    assert (await web.post("/oauth/introspect", data={"token": token}, auth=auth)).json() == {"active": False}
    assert (await web.post("/oauth/introspect", data={"token": "nonsense"}, auth=auth)).json() == {"active": False}


async def test_introspection_requires_client_authentication(web: httpx.AsyncClient, world: World) -> None:
    token = (await client_credentials(web, world.clients["machine"])).json()["access_token"]
    response = await web.post("/oauth/introspect", data={"token": token})
    assert response.status_code == 401
    spa = world.clients["spa"]
    public = await web.post("/oauth/introspect", data={"token": token, "client_id": spa.client_id})
    assert public.status_code == 401


async def test_a_revoked_client_gets_no_tokens_and_its_tokens_stop(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    machine = world.clients["machine"]
    token = (await client_credentials(web, machine)).json()["access_token"]
    await admin.operator_set_client_enabled(db, machine.client_id, False)  # what `programme-api clients disable` does
    await db.commit()
    assert (await client_credentials(web, machine)).status_code == 401
    assert (await web.get("/_probe", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_token_issuance_audit_event_names_the_client_and_scope(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token = (await client_credentials(web, world.clients["machine"], scope="programme:read")).json()
    event = await db.scalar(
        sa.select(AuditEvent).where(
            AuditEvent.action == "oauth.token_issued", AuditEvent.organisation_id == world.org_a.id
        )
    )
    assert event is not None
    assert event.details["client_id"] == world.clients["machine"].client_id
    assert event.details["scope"] == token["scope"]
    assert event.details["grant_type"] == "client_credentials"
    assert event.request_id

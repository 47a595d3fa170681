"""Shared set-up for the OAuth tests: an app on the test's transaction, a small world, and browser steps.

Test modules import the fixtures they use by name (pytest finds fixtures through module globals).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.models import (
    AuditEvent,
    Facilitator,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthToken,
    Organisation,
    Region,
    Role,
    User,
    UserRegion,
)
from programme_api.domain.passwords import hash_password
from programme_api.oauth.clients import EXPLORER_CLIENT_ID, create_client
from programme_api.oauth.errors import AuthenticationError
from programme_api.oauth.resource import unauthorized_response
from programme_api.oauth.service import OAuthService
from programme_api.runtime import Runtime

from .conftest import MigratedDatabase, as_app_role
from .factories import make_organisation, make_region

ISSUER = "https://programme.test"
EXPLORER_REDIRECT = f"{ISSUER}/graphql"
APP_REDIRECT = "https://partner.example/callback"
PASSWORD = "correct horse battery staple"


def oauth_settings(database_url: str, key_file: Path, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, issuer=ISSUER, secret_key_file=key_file, **overrides)


async def probe(request: Request) -> Response:
    """A protected non-GraphQL endpoint for tests: the principal as JSON, or the 401 challenge."""
    try:
        principal = await Runtime.of(request).authenticate(request)
    except AuthenticationError as error:
        return unauthorized_response(error)
    if principal is None:
        return unauthorized_response()
    return JSONResponse(
        {
            "subject": principal.subject,
            "actor_type": principal.actor_type.value,
            "organisation_id": str(principal.organisation_id),
            "scopes": sorted(principal.scopes),
            "region_ids": None if principal.region_ids is None else sorted(str(r) for r in principal.region_ids),
            "role": principal.role.value if principal.role else None,
            "user_id": str(principal.user_id) if principal.user_id else None,
            "client_id": principal.client_id,
            "facilitator_id": str(principal.facilitator_id) if principal.facilitator_id else None,
            "evaluation_project_id": str(principal.evaluation_project_id) if principal.evaluation_project_id else None,
        }
    )


def build_app(settings: Settings, engine: AsyncEngine, session_maker: Any = None) -> Starlette:
    """The real app plus ``/_probe``, a protected non-GraphQL endpoint that shows the caller's principal."""
    app = create_app(settings, engine=engine, session_maker=session_maker)
    app.router.routes.append(Route("/_probe", probe, methods=["GET"]))
    return app


@pytest.fixture
def settings(migrated_database: MigratedDatabase, tmp_path: Path) -> Settings:
    statement_cache_size = migrated_database.settings.statement_cache_size
    return oauth_settings(migrated_database.url, tmp_path / "keys.json", statement_cache_size=statement_cache_size)


@pytest.fixture
def app(settings: Settings, migrated_database: MigratedDatabase, session_maker: Any) -> Starlette:
    return build_app(settings, **migrated_database.app_binding(session_maker))


@pytest.fixture
async def web(app: Starlette, backend: str, connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, as a browser or partner app would reach it (cookies kept); on PostgreSQL
    every request runs as the non-owner role, under row-level security."""
    served = as_app_role(app, backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url=ISSUER) as client:
        yield client


def service_of(app: Starlette) -> OAuthService:
    service: OAuthService = app.state.oauth_service
    return service


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    organisation_id: uuid.UUID


@dataclass
class Person:
    id: uuid.UUID
    email: str
    organisation_id: uuid.UUID
    role: Role


@dataclass
class World:
    """Two organisations. A has regions north and south; B has east."""

    org_a: Organisation
    org_b: Organisation
    north: Region
    south: Region
    east: Region
    people: dict[str, Person] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@functools.cache
def password_hash(password: str) -> str:
    """argon2 takes about half a second here by design; hash each test password once per run."""
    return hash_password(password)


async def make_person(
    db: AsyncSession, organisation: Organisation, role: Role, regions: tuple[Region, ...] = (), **overrides: Any
) -> Person:
    user = User(
        organisation_id=organisation.id,
        email=overrides.pop("email", f"{unique(role.value)}@example.org"),
        display_name=overrides.pop("display_name", "Test Person"),
        password_hash=password_hash(overrides.pop("password", PASSWORD)),
        role=role,
        **overrides,
    )
    db.add(user)
    await db.flush()
    for region in regions:
        db.add(UserRegion(organisation_id=organisation.id, user_id=user.id, region_id=region.id))
    await db.flush()
    return Person(id=user.id, email=user.email, organisation_id=organisation.id, role=role)


async def make_client(db: AsyncSession, organisation: Organisation, scope: str, **overrides: Any) -> Client:
    options: dict[str, Any] = {
        "name": "Partner app",
        "region_slugs": [],
        "grants": [],
        "redirect_uris": [],
        "evaluation_project_slug": None,
        "public": False,
        **overrides,
    }
    created = await create_client(db, organisation_slug=organisation.slug, scope=scope, **options)
    return Client(created.client_id, created.client_secret, organisation.id)


async def client_row(db: AsyncSession, client: Client) -> OAuthClient:
    """The row of a client ``make_client`` registered, for setting up a state no API call reaches directly
    (a revoked client, a subscription pointing at it)."""
    row = await db.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client.client_id))
    assert row is not None
    return row


@pytest.fixture
async def world(db: AsyncSession) -> World:
    org_a, org_b = await make_organisation(db), await make_organisation(db)
    world = World(
        org_a=org_a,
        org_b=org_b,
        north=await make_region(db, org_a, slug="north"),
        south=await make_region(db, org_a, slug="south"),
        east=await make_region(db, org_b, slug="east"),
    )
    world.people["admin"] = await make_person(db, org_a, Role.ORG_ADMIN)
    world.people["coordinator"] = await make_person(db, org_a, Role.COORDINATOR, (world.north,))
    world.people["facilitator"] = await make_person(db, org_a, Role.FACILITATOR)
    world.people["admin_b"] = await make_person(db, org_b, Role.ORG_ADMIN)
    db.add(
        Facilitator(organisation_id=org_a.id, user_id=world.people["facilitator"].id, display_name="Fran Facilitator")
    )
    world.clients["machine"] = await make_client(
        db, org_a, "programme:read attendance:write", name="Attendance app", region_slugs=["north"]
    )
    world.clients["web"] = await make_client(
        db,
        org_a,
        "programme:read programme:write participants:read",
        name="Booking app",
        grants=["authorization_code"],
        redirect_uris=[APP_REDIRECT],
    )
    world.clients["spa"] = await make_client(
        db, org_a, "programme:read", name="Browser app", public=True, redirect_uris=[APP_REDIRECT]
    )
    world.clients["machine_b"] = await make_client(db, org_b, "programme:read", name="Other organisation's app")
    await db.commit()
    return world


# --- browser steps -----------------------------------------------------------------------------------------


def hidden_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name!r} in page"
    return match.group(1)


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD, next_path: str = "") -> httpx.Response:
    page = await http.get("/login", params={"next": next_path} if next_path else None)
    form = {"email": email, "password": password, "csrf": hidden_value(page.text, "csrf")}
    if next_path:
        form["next"] = next_path
    return await http.post("/login", data=form)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, create_s256_code_challenge(verifier)


def authorize_params(client_id: str, redirect_uri: str, challenge: str | None, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "st-123"}
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def get_code(
    http: httpx.AsyncClient, client_id: str, redirect_uri: str, challenge: str, scope: str | None = None
) -> str:
    """Run /oauth/authorize for the signed-in browser, approving the consent page if one is shown."""
    params = authorize_params(client_id, redirect_uri, challenge, **({"scope": scope} if scope else {}))
    response = await http.get("/oauth/authorize", params=params)
    if response.status_code == 200:  # consent page
        form = {"csrf": hidden_value(response.text, "csrf"), "decision": "approve", **params}
        response = await http.post("/oauth/authorize", data=form)
    assert response.status_code == 302, response.text
    query = query_of(response.headers["location"])
    assert query.get("state") == "st-123"
    assert "code" in query, query
    return query["code"]


async def exchange(
    http: httpx.AsyncClient, client: Client | str, code: str, verifier: str | None, redirect_uri: str
) -> httpx.Response:
    client_id = client if isinstance(client, str) else client.client_id
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id}
    if verifier is not None:
        data["code_verifier"] = verifier
    if isinstance(client, Client) and client.client_secret is not None:
        data["client_secret"] = client.client_secret
    return await http.post("/oauth/token", data=data)


async def client_credentials(http: httpx.AsyncClient, client: Client, scope: str | None = None) -> httpx.Response:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return await http.post("/oauth/token", data=data, auth=(client.client_id, client.client_secret or ""))


# --- database observations ---------------------------------------------------------------------------------


async def counts(db: AsyncSession) -> dict[str, int]:
    """Rows the authorization server writes; a refused request must leave these unchanged."""
    result = {}
    for model in (OAuthToken, OAuthAuthorizationCode, AuditEvent, OAuthClient):
        result[model.__tablename__] = await db.scalar(sa.select(sa.func.count()).select_from(model)) or 0
    return result


async def audit_actions(db: AsyncSession, organisation_id: uuid.UUID | None = None) -> list[str]:
    query = sa.select(AuditEvent.action).order_by(AuditEvent.occurred_at)
    if organisation_id is not None:
        query = query.where(AuditEvent.organisation_id == organisation_id)
    return list(await db.scalars(query))


async def person_tokens(
    web: httpx.AsyncClient, email: str, client_id: str = EXPLORER_CLIENT_ID, scope: str | None = None
) -> dict[str, Any]:
    """Sign in (if needed) and run the whole explorer flow; returns the token response."""
    await sign_in(web, email)
    verifier, challenge = pkce_pair()
    code = await get_code(web, client_id, EXPLORER_REDIRECT, challenge, scope=scope)
    response = await exchange(web, client_id, code, verifier, EXPLORER_REDIRECT)
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


async def refresh(
    web: httpx.AsyncClient, refresh_token: str, client_id: str = EXPLORER_CLIENT_ID, **extra: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **extra}
    return await web.post("/oauth/token", data=data)


def bearer(token: dict[str, Any] | str) -> dict[str, str]:
    value = token if isinstance(token, str) else token["access_token"]
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"no Redis at 127.0.0.1:6379 ({exc}); CI must test the shared throttle for real")
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({exc})")
    yield client
    await client.aclose()

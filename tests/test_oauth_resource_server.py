"""The resource server: forged, altered, expired, misdirected and revoked tokens, and the principals built.

Attack tokens are made with joserfc, the way an attacker with the published JWKS would make them.
"""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.config import Settings
from programme_api.domain.models import (
    ConsentPurpose,
    EvaluationProject,
    EvaluationProjectOrganisation,
    Facilitator,
    OAuthToken,
    Role,
)
from programme_api.domain.principal import ROLE_SCOPES
from programme_api.oauth.keys import read_key_file

from .oauth_support import (
    ISSUER,
    World,
    app,
    bearer,
    client_credentials,
    make_client,
    make_person,
    person_tokens,
    settings,
    web,
    world,
)


async def machine_token(web: httpx.AsyncClient, world: World) -> str:
    token: str = (await client_credentials(web, world.clients["machine"])).json()["access_token"]
    return token


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims read without verification, as an attacker holding a token would."""
    header, payload, _ = token.split(".")
    return _b64json(header), _b64json(payload)


def _b64json(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def signing_key(settings: Settings) -> tuple[str, ECKey]:
    current = read_key_file(settings.secret_key_file).current
    return current.kid, current.key


async def assert_refused(web: httpx.AsyncClient, token: str, description: str | None = None) -> None:
    response = await web.get("/_probe", headers=bearer(token))
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"')
    if description is not None:
        assert description in challenge


async def test_no_token_gets_a_bare_bearer_challenge(web: httpx.AsyncClient) -> None:
    response = await web.get("/_probe")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    basic = await web.get("/_probe", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert basic.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_is_accepted(web: httpx.AsyncClient, world: World) -> None:
    response = await web.get("/_probe", headers=bearer(await machine_token(web, world)))
    assert response.status_code == 200


async def test_a_token_in_the_query_string_is_refused_even_when_valid(web: httpx.AsyncClient, world: World) -> None:
    token = await machine_token(web, world)
    response = await web.get("/_probe", params={"access_token": token})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    both = await web.get("/_probe", params={"access_token": token}, headers=bearer(token))
    assert both.status_code == 400


@pytest.mark.parametrize("value", ["", "not-a-jwt", "a.b.c", "x" * 5000])
async def test_garbage_tokens_are_invalid(web: httpx.AsyncClient, value: str) -> None:
    response = await web.get("/_probe", headers={"Authorization": f"Bearer {value}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_alg_none_is_refused(web: httpx.AsyncClient, world: World) -> None:
    header, claims = unverified(await machine_token(web, world))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forged = jwt.encode({**header, "alg": "none"}, claims, None, algorithms=["none"])  # type: ignore[arg-type]
    await assert_refused(web, forged, "expected algorithm")


async def test_hs256_signed_with_the_public_key_is_refused(web: httpx.AsyncClient, world: World) -> None:
    header, claims = unverified(await machine_token(web, world))
    public_jwk = (await web.get("/.well-known/jwks.json")).json()["keys"][0]
    secret = OctKey.import_key(json.dumps(public_jwk).encode())
    forged = jwt.encode({**header, "alg": "HS256"}, {**claims, "scope": "admin"}, secret, algorithms=["HS256"])
    await assert_refused(web, forged, "expected algorithm")


async def test_an_unknown_kid_is_refused(web: httpx.AsyncClient, world: World) -> None:
    header, claims = unverified(await machine_token(web, world))
    attacker = ECKey.generate_key("P-256", private=True)
    forged = jwt.encode({**header, "kid": "attacker-key"}, claims, attacker, algorithms=["ES256"])
    await assert_refused(web, forged, "unknown key")
    without_kid = {name: value for name, value in header.items() if name != "kid"}
    await assert_refused(web, jwt.encode(without_kid, claims, attacker, algorithms=["ES256"]), "unknown key")


async def test_our_kid_with_another_key_is_refused(web: httpx.AsyncClient, world: World) -> None:
    header, claims = unverified(await machine_token(web, world))
    attacker = ECKey.generate_key("P-256", private=True)
    await assert_refused(web, jwt.encode(header, claims, attacker, algorithms=["ES256"]), "signature")


async def test_a_tampered_payload_is_refused(web: httpx.AsyncClient, world: World) -> None:
    token = await machine_token(web, world)
    head, _payload, signature = token.split(".")
    _, claims = unverified(token)
    widened = {**claims, "scope": "programme:read admin participants:read"}
    payload = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    await assert_refused(web, f"{head}.{payload}.{signature}", "signature")


def resign(settings: Settings, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token properly signed with the server's own key: only its claims are wrong."""
    kid, key = signing_key(settings)
    return jwt.encode({**header, "kid": kid}, claims, key, algorithms=["ES256"])


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "https://other-api.example"}, "not issued for this API"),
        ({"aud": "client-id-as-audience"}, "not issued for this API"),
        ({"iss": "https://evil.example"}, "not issued for this API"),
        ({"iat": int(time.time()) + 3600}, "not issued for this API"),
        ({"jti": None}, "not issued for this API"),
        ({"client_id": None}, "not issued for this API"),
        ({"jti": "never-issued"}, "not known"),
    ],
)
async def test_correctly_signed_tokens_with_wrong_claims_are_refused(
    web: httpx.AsyncClient, world: World, settings: Settings, change: dict[str, Any], description: str
) -> None:
    header, claims = unverified(await machine_token(web, world))
    altered = {name: value for name, value in {**claims, **change}.items() if value is not None}
    await assert_refused(web, resign(settings, header, altered), description)


@pytest.mark.parametrize("typ", ["JWT", "at+JWT2", None])
async def test_a_token_that_is_not_typed_as_an_access_token_is_refused(
    web: httpx.AsyncClient, world: World, settings: Settings, typ: str | None
) -> None:
    _header, claims = unverified(await machine_token(web, world))
    kid, key = signing_key(settings)
    new_header = {"alg": "ES256", "kid": kid, **({"typ": typ} if typ else {})}
    forged = jwt.encode(new_header, claims, key, algorithms=["ES256"], default_type=None)
    await assert_refused(web, forged, "not an access token")


async def test_a_revoked_token_is_refused_on_its_next_use(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    token = await machine_token(web, world)
    _, claims = unverified(token)
    await db.execute(sa.update(OAuthToken).where(OAuthToken.jti == claims["jti"]).values(revoked_at=sa.func.now()))
    await db.commit()
    await assert_refused(web, token, "revoked")


# --- principals ------------------------------------------------------------------------------------------


async def test_machine_client_principal_has_client_scopes_and_regions(web: httpx.AsyncClient, world: World) -> None:
    principal = (await web.get("/_probe", headers=bearer(await machine_token(web, world)))).json()
    assert principal == {
        "subject": world.clients["machine"].client_id,
        "actor_type": "client",
        "organisation_id": str(world.org_a.id),
        "scopes": ["attendance:write", "programme:read"],
        "region_ids": [str(world.north.id)],
        "role": None,
        "user_id": None,
        "client_id": world.clients["machine"].client_id,
        "facilitator_id": None,
        "evaluation_project_id": None,
    }


async def test_person_principal_intersects_token_client_and_role_scopes_and_regions(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    south_app = await make_client(
        db,
        world.org_a,
        "programme:read attendance:write admin",
        grants=["authorization_code"],
        redirect_uris=[f"{ISSUER}/graphql"],
        region_slugs=["south", "north"],
        public=True,
    )
    both = await make_person(db, world.org_a, Role.COORDINATOR, (world.north,), email="two-regions@example.org")
    await db.commit()
    token = await person_tokens(web, both.email, client_id=south_app.client_id)
    principal = (await web.get("/_probe", headers=bearer(token))).json()
    assert principal["scopes"] == ["attendance:write", "programme:read"]  # admin is not a coordinator's
    assert principal["region_ids"] == [str(world.north.id)]  # client {north, south} ∩ person {north}
    assert principal["role"] == "coordinator"
    assert principal["user_id"] == str(both.id)
    assert principal["subject"] == str(both.id)
    assert principal["client_id"] == south_app.client_id


async def test_coordinator_without_regions_reaches_none(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    person = await make_person(db, world.org_a, Role.COORDINATOR, email="unassigned@example.org")
    await db.commit()
    principal = (await web.get("/_probe", headers=bearer(await person_tokens(web, person.email)))).json()
    assert principal["region_ids"] == []


async def test_facilitator_principal_names_their_facilitator_record(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    person = world.people["facilitator"]
    facilitator_id = await db.scalar(sa.select(Facilitator.id).where(Facilitator.user_id == person.id))
    principal = (await web.get("/_probe", headers=bearer(await person_tokens(web, person.email)))).json()
    assert principal["facilitator_id"] == str(facilitator_id)
    assert principal["role"] == "facilitator"
    assert set(principal["scopes"]) == ROLE_SCOPES[Role.FACILITATOR]
    assert principal["region_ids"] is None


async def test_evaluator_client_principal_carries_its_evaluation_project(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    project = EvaluationProject(
        organisation_id=world.org_a.id,
        slug=f"eval-{uuid.uuid4().hex[:6]}",
        name="Outcomes study",
        instrument_codes=["SWEMWBS"],
        starts_on=date(2026, 1, 1),
        ends_on=date(2026, 12, 31),
        consent_purpose=ConsentPurpose.EVALUATION,
        pseudonym_key=b"k" * 32,
    )
    db.add(project)
    await db.flush()
    db.add(EvaluationProjectOrganisation(organisation_id=world.org_a.id, evaluation_project_id=project.id))
    evaluator = await make_client(db, world.org_a, "evaluation:read", evaluation_project_slug=project.slug)
    await db.commit()
    token = (await client_credentials(web, evaluator)).json()
    principal = (await web.get("/_probe", headers=bearer(token))).json()
    assert principal["evaluation_project_id"] == str(project.id)
    assert principal["scopes"] == ["evaluation:read"]
    assert principal["region_ids"] is None


async def test_principal_of_other_organisation_is_that_organisation(web: httpx.AsyncClient, world: World) -> None:
    token = (await client_credentials(web, world.clients["machine_b"])).json()
    principal = (await web.get("/_probe", headers=bearer(token))).json()
    assert principal["organisation_id"] == str(world.org_b.id)
    assert principal["region_ids"] is None

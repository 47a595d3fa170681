"""The resource server: a bearer token becomes the ``Principal`` every access decision is made from.

``authenticate`` is installed as ``Runtime.authenticate``. It answers ``None`` when the request carries no
token (the GraphQL layer decides what anonymous callers get; other protected endpoints use
``unauthorized_response``), and raises ``AuthenticationError`` for anything else that is not a valid token.

After the signature and claims check (``validation.py``) it reads the token's row with its client, person
and facilitator record in one statement, and the bound regions in a second. Reading the database on every
request is deliberate: revocation (of the token, its family, its client) and changes to a person's role,
regions or active flag take effect at the very next request on every worker, and the same row supplies
what the principal needs, so a revocation cache (e.g. in Redis) would save nothing.

Effective access: scopes = token ∩ client ∩ role; regions = client's regions ∩ person's regions, where
"no binding" means every region of the organisation (``None``); a coordinator without regions reaches none.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from ..db import read_only_session
from ..domain.models import (
    ActorType,
    Facilitator,
    OAuthClient,
    OAuthToken,
    Role,
    User,
    UserRegion,
    utcnow,
)
from ..domain.principal import ALL_SCOPES, Principal, effective_scopes
from ..runtime import Runtime
from .clients import client_region_ids, is_explorer_anchor, parse_scope, public_client_id
from .errors import AuthenticationError
from .service import oauth_service
from .validation import AccessTokenClaims, verify_access_token

#: Roles whose reach is the regions they are assigned to (an org admin or evaluator is not region-bound).
_REGION_BOUND_ROLES = frozenset({Role.COORDINATOR, Role.FACILITATOR})


def bearer_token(connection: HTTPConnection) -> str | None:
    """The token from ``Authorization: Bearer``; a token in the query string is refused (RFC 6750 §2.3 risk)."""
    if "access_token" in connection.query_params:
        raise AuthenticationError.invalid_request("Send the access token in the Authorization header only.")
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip()
    if not token:
        raise AuthenticationError("The bearer token is empty.")
    return token


async def authenticate(connection: HTTPConnection) -> Principal | None:
    token = bearer_token(connection)
    if token is None:
        return None
    service = oauth_service(connection)
    claims = verify_access_token(token, service.keyring, issuer=service.issuer, audience=service.tokens.audience)
    async with read_only_session(Runtime.of(connection).session_maker) as session:
        return await load_principal(session, claims)


def _person_reach(role: Role | None, regions: frozenset[uuid.UUID]) -> frozenset[uuid.UUID] | None:
    """A coordinator reaches exactly their regions (none if unassigned); a facilitator is narrowed by theirs
    when they have any (their groups narrow them further); everyone else is not region-bound."""
    if role is Role.COORDINATOR:
        return regions
    if role is Role.FACILITATOR and regions:
        return regions
    return None


def _intersect(first: frozenset[uuid.UUID] | None, second: frozenset[uuid.UUID] | None) -> frozenset[uuid.UUID] | None:
    if first is None:
        return second
    if second is None:
        return first
    return first & second


async def load_principal(session: AsyncSession, claims: AccessTokenClaims, now: datetime | None = None) -> Principal:
    """The principal for verified claims, from the current rows (raises if revoked or no longer valid)."""
    found = (
        await session.execute(
            sa.select(OAuthToken, OAuthClient, User, Facilitator.id)
            .join(OAuthClient, OAuthClient.id == OAuthToken.client_pk)
            .outerjoin(User, User.id == OAuthToken.user_id)
            .outerjoin(
                Facilitator,
                sa.and_(Facilitator.user_id == User.id, Facilitator.organisation_id == OAuthToken.organisation_id),
            )
            .where(OAuthToken.jti == claims.jti)
        )
    ).first()
    if found is None:
        raise AuthenticationError("The access token is not known.")
    token, client, user, facilitator_id = found
    if token.revoked_at is not None:
        raise AuthenticationError("The access token has been revoked.")
    if token.access_expires_at <= (now or utcnow()):
        raise AuthenticationError("The access token has expired.")
    if client.revoked_at is not None or public_client_id(client.client_id) != claims.client_id:
        raise AuthenticationError("The access token's client is no longer valid.")
    if token.user_id is not None and (user is None or not user.is_active or str(user.id) != claims.subject):
        raise AuthenticationError("The access token's user can no longer sign in.")

    client_regions = await client_region_ids(session, client.id)
    user_regions: frozenset[uuid.UUID] = frozenset()
    if user is not None and user.role in _REGION_BOUND_ROLES:
        user_regions = frozenset(
            await session.scalars(sa.select(UserRegion.region_id).where(UserRegion.user_id == user.id))
        )

    role = user.role if user is not None else None
    client_scopes = ALL_SCOPES if is_explorer_anchor(client.client_id) else parse_scope(client.scope)
    scopes = effective_scopes(claims.scopes & parse_scope(token.scope) & client_scopes, role)
    region_ids = _intersect(client_regions or None, _person_reach(role, user_regions))
    project_id = client.evaluation_project_id
    if user is not None and user.evaluation_project_id is not None:
        if project_id is not None and project_id != user.evaluation_project_id:
            scopes = scopes - {"evaluation:read"}  # client and person are bound to different projects
        project_id = project_id or user.evaluation_project_id
    return Principal(
        subject=claims.subject,
        actor_type=ActorType.USER if user is not None else ActorType.CLIENT,
        organisation_id=token.organisation_id,
        scopes=scopes,
        region_ids=region_ids,
        role=role,
        user_id=user.id if user is not None else None,
        client_id=claims.client_id,
        facilitator_id=facilitator_id,
        evaluation_project_id=project_id,
        token_id=claims.jti,
    )


def unauthorized_response(error: AuthenticationError | None = None) -> Response:
    """401 (or 400) with the RFC 6750 challenge, for protected endpoints outside GraphQL."""
    if error is None:
        return JSONResponse(
            {"error": "unauthorized", "error_description": "A bearer token is required."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status_code,
        headers={"WWW-Authenticate": error.www_authenticate},
    )

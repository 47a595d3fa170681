"""The resource server: a bearer token becomes the ``Principal`` every access decision is made from.

``authenticate`` is installed as ``Runtime.authenticate``. It answers ``None`` when the request carries no
token (the GraphQL layer decides what anonymous callers get; other protected endpoints use
``unauthorized_response``), and raises ``AuthenticationError`` for anything else that is not a valid token.

The first time a worker sees a token it checks the signature and claims (``validation.py``), reads the
token's row with its client, person and facilitator record, and the bound regions, and remembers the
verdict (the principal, or why the token is refused) keyed by the token exactly as presented. Later
requests with that token cost a dictionary lookup and an expiry check: no signature check and no database
round trip. The remembered verdict is dropped when anything it was built from changes: revocation of the
token's family, a disabled or changed client, a disabled person or a changed role or regions. Those changes
announce themselves in their own transaction (``invalidation.py``) and reach every worker through
PostgreSQL ``LISTEN``/``NOTIFY`` or Redis pub/sub, and the worker that made the change at commit. A worker
whose notification connection is down trusts nothing it remembered and reads the database on every
request until it has subscribed again (``listeners.py``).

Effective access: scopes = token ∩ client ∩ role; regions = client's regions ∩ person's regions, where
"no binding" means every region of the organisation (``None``); a coordinator without regions reaches none.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
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
from ..domain.tenancy import bind_tenant_of
from ..runtime import Runtime
from .clients import client_region_ids, is_explorer_anchor, parse_scope, public_client_id
from .errors import AuthenticationError
from .invalidation import client_tag, family_tag, user_tag
from .service import oauth_service
from .validation import AccessTokenClaims, verify_access_token
from .views import TokenView, views_of

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
    views = views_of(connection)
    generation = service.keyring.generation()
    cached = views.tokens.get(token)
    if cached is not None and cached.value.key_generation == generation and views.channel.trusts(cached.loaded_at):
        return _verdict(cached.value)
    claims = verify_access_token(token, service.keyring, issuer=service.issuer, audience=service.tokens.audience)
    epoch = views.tokens.epoch
    async with read_only_session(Runtime.of(connection).session_maker) as session:
        found = await load_token(session, claims)
    if found.cacheable:
        view = TokenView(found.principal, found.refusal, claims.expires_at, generation)
        views.tokens.put(token, view, found.tags, epoch)
    if found.refusal is not None:
        raise AuthenticationError(found.refusal)
    assert found.principal is not None
    return found.principal


def _verdict(view: TokenView) -> Principal:
    """A remembered verdict, with the one check that changes by the clock alone: expiry."""
    if view.expires_at <= time.time():
        raise AuthenticationError("The access token has expired.")
    if view.refusal is not None:
        raise AuthenticationError(view.refusal)
    assert view.principal is not None
    return view.principal


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


@dataclass(frozen=True)
class LoadedToken:
    """A token as the database has it: the principal or the refusal, and the tags of the rows it came from.

    Only refusals that a later change could lift (a re-enabled client, say) or that are final (revocation)
    are remembered; an unknown or expired token is not (``cacheable`` is false).
    """

    principal: Principal | None
    refusal: str | None
    tags: tuple[str, ...] = ()
    cacheable: bool = True


async def load_principal(session: AsyncSession, claims: AccessTokenClaims, now: datetime | None = None) -> Principal:
    """The principal for verified claims, from the current rows (raises if revoked or no longer valid)."""
    found = await load_token(session, claims, now)
    if found.refusal is not None:
        raise AuthenticationError(found.refusal)
    assert found.principal is not None
    return found.principal


async def load_token(session: AsyncSession, claims: AccessTokenClaims, now: datetime | None = None) -> LoadedToken:
    """What the current rows say about verified claims.

    The token's organisation is not known until its row is read: the transaction is bound to it by the
    token's ``jti`` first (``bind_tenant_of``), so the reads below run under row-level security.
    """
    await bind_tenant_of(session, "access_token", claims.jti)
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
        return LoadedToken(None, "The access token is not known.", cacheable=False)
    token, client, user, facilitator_id = found
    tags = (family_tag(token.family_id), client_tag(client.id)) + ((user_tag(user.id),) if user is not None else ())
    if token.revoked_at is not None:
        return LoadedToken(None, "The access token has been revoked.", tags)
    if token.access_expires_at <= (now or utcnow()):
        return LoadedToken(None, "The access token has expired.", cacheable=False)
    if client.revoked_at is not None or public_client_id(client.client_id) != claims.client_id:
        return LoadedToken(None, "The access token's client is no longer valid.", tags)
    if token.user_id is not None and (user is None or not user.is_active or str(user.id) != claims.subject):
        return LoadedToken(None, "The access token's user can no longer sign in.", tags, cacheable=user is not None)

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
    principal = Principal(
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
        trusted_documents_only=client.trusted_documents_only,
    )
    return LoadedToken(principal, None, tags)


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

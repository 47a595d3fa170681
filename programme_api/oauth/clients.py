"""OAuth clients: what authlib needs to know about one, the built-in explorer client, and registration.

A registered client belongs to one organisation, may be bound to regions, and has an allowed scope set. A
confidential client authenticates with a 256-bit secret stored only as its SHA-256 hash (compared in
constant time); a public client (a browser app) has no secret. Every client that uses the authorization
code grant must use PKCE with S256 (see ``grants.py``).

The explorer (GraphiQL at ``/graphql``) is a built-in public client, ``programme-explorer``, that belongs to
no single organisation: the signed-in person's organisation applies. Its behaviour (redirect URI
``{ISSUER}/graphql``, grants, scopes) is defined here in code, never read from a row, so a change of
``ISSUER`` takes effect at once. Codes and tokens still need a client row to point at (``client_pk`` is a
non-null foreign key, and every row belongs to an organisation), so the first sign-in of an organisation
creates an anchor row for it, named ``programme-explorer.<organisation id>``. Anchor rows are never usable as
clients in their own right: ``query_client`` refuses their ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..domain.directory import organisation_by_slug
from ..domain.errors import DomainError, ErrorCode
from ..domain.models import ActorType, OAuthClient, OAuthClientRegion
from ..domain.passwords import secret_matches
from ..domain.principal import ALL_SCOPES, Principal
from ..domain.values import text_problem
from .lookups import evaluation_project_id, regions_by_slug

if TYPE_CHECKING:
    from .admin import CreatedClient

EXPLORER_CLIENT_ID = "programme-explorer"
EXPLORER_NAME = "Programme explorer"
_EXPLORER_ANCHOR_PREFIX = f"{EXPLORER_CLIENT_ID}."
CONFIDENTIAL_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
GRANT_CHOICES = ("client_credentials", "authorization_code")


def parse_scope(scope: str | None) -> frozenset[str]:
    return frozenset((scope or "").split())


def format_scope(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))


def explorer_redirect_uri(issuer: str) -> str:
    return f"{issuer}/graphql"


def explorer_anchor_id(organisation_id: uuid.UUID) -> str:
    return f"{_EXPLORER_ANCHOR_PREFIX}{organisation_id.hex}"


def is_explorer_anchor(row_client_id: str) -> bool:
    return row_client_id.startswith(_EXPLORER_ANCHOR_PREFIX)


def public_client_id(row_client_id: str) -> str:
    """The client id the outside world uses for a row (anchor rows all answer to the explorer's id)."""
    return EXPLORER_CLIENT_ID if is_explorer_anchor(row_client_id) else row_client_id


@dataclass(frozen=True)
class ClientRecord(ClientMixin):  # type: ignore[misc]
    """A client as authlib sees it, detached from the session that loaded it.

    ``pk`` and ``organisation_id`` are ``None`` only for the built-in explorer, which has no organisation
    until a person signs in.
    """

    client_id: str
    name: str
    scopes: frozenset[str]
    grant_types: frozenset[str]
    redirect_uris: tuple[str, ...]
    secret_hash: str | None
    pk: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    evaluation_project_id: uuid.UUID | None = None
    builtin: bool = False

    @property
    def is_confidential(self) -> bool:
        return self.secret_hash is not None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """None: every authorization request must name its redirect URI (matched exactly)."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scopes if this client may have all of them (``None`` means ``invalid_scope``).

        No scope requested means the client's whole allowed set (RFC 6749 §3.3 default).
        """
        requested = parse_scope(scope)
        if not requested:
            return format_scope(self.scopes)
        if not requested <= self.scopes:
            return None
        return format_scope(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_confidential:
            return method in CONFIDENTIAL_AUTH_METHODS
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and not self.is_confidential:
            return False
        return grant_type in self.grant_types


def explorer_client(issuer: str) -> ClientRecord:
    return ClientRecord(
        client_id=EXPLORER_CLIENT_ID,
        name=EXPLORER_NAME,
        scopes=ALL_SCOPES,
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        redirect_uris=(explorer_redirect_uri(issuer),),
        secret_hash=None,
        builtin=True,
    )


def client_record(row: OAuthClient) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        scopes=parse_scope(row.scope) & ALL_SCOPES,
        grant_types=frozenset(str(g) for g in row.grant_types),
        redirect_uris=tuple(str(u) for u in row.redirect_uris),
        secret_hash=row.client_secret_hash,
        pk=row.id,
        organisation_id=row.organisation_id,
        evaluation_project_id=row.evaluation_project_id,
    )


def find_client(session: Session, client_id: str, issuer: str) -> ClientRecord | None:
    """The active client answering to ``client_id`` (explorer anchors and revoked clients answer to nothing)."""
    if client_id == EXPLORER_CLIENT_ID:
        return explorer_client(issuer)
    if is_explorer_anchor(client_id) or text_problem(client_id) is not None:
        return None
    row = session.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    if row is None or row.revoked_at is not None:
        return None
    return client_record(row)


def ensure_explorer_anchor(session: Session, organisation_id: uuid.UUID, issuer: str) -> uuid.UUID:
    """The explorer's anchor row for an organisation, created on first use (safe under concurrent sign-ins)."""
    anchor_id = explorer_anchor_id(organisation_id)
    query = sa.select(OAuthClient.id).where(OAuthClient.client_id == anchor_id)
    existing = session.scalar(query)
    if existing is not None:
        return existing
    definition = explorer_client(issuer)
    row = OAuthClient(
        organisation_id=organisation_id,
        client_id=anchor_id,
        client_secret_hash=None,
        name=definition.name,
        scope=format_scope(definition.scopes),
        grant_types=sorted(definition.grant_types),
        redirect_uris=list(definition.redirect_uris),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        created = session.scalar(query)  # a concurrent first sign-in created it
        if created is None:
            raise
        return created
    return row.id


def check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parts.scheme == "https" or loopback) or not parts.netloc or parts.fragment:
        raise DomainError(
            ErrorCode.INVALID,
            f"redirect URI {uri!r} must be an absolute https URL (http only for loopback) without a fragment",
            "redirect_uri",
        )
    return uri


async def create_client(
    session: AsyncSession,
    *,
    organisation_slug: str,
    name: str,
    scope: str,
    region_slugs: list[str],
    grants: list[str],
    redirect_uris: list[str],
    evaluation_project_slug: str | None,
    public: bool,
) -> CreatedClient:
    """Register a client for the operator (slugs instead of ids); the rules are ``admin.create_client``'s."""
    from . import admin

    organisation = await organisation_by_slug(session, organisation_slug)
    project_id: uuid.UUID | None = None
    if evaluation_project_slug is not None:
        project_id = await evaluation_project_id(session, evaluation_project_slug, organisation.id)
    regions = await regions_by_slug(session, organisation.id, region_slugs)
    return await admin.create_client(
        session,
        admin.operator(organisation.id),
        admin.NewClient(
            name=name,
            scope=scope,
            region_ids=[region.id for region in regions],
            grants=grants,
            redirect_uris=redirect_uris,
            evaluation_project_id=project_id,
            public=public,
        ),
    )


async def client_region_ids(session: AsyncSession, client_pk: uuid.UUID) -> frozenset[uuid.UUID]:
    """The regions a client is bound to (empty: not region-bound); one query for every principal built for it."""
    return frozenset(
        await session.scalars(sa.select(OAuthClientRegion.region_id).where(OAuthClientRegion.client_pk == client_pk))
    )


async def client_principal(session: AsyncSession, client_id: str) -> Principal:
    """The rights of a client acting for itself, for operator commands run in its name (``export surveys``).

    The same rights a client-credentials token of this client would carry: its scopes, organisation,
    regions and evaluation project; a revoked or unknown client is refused.
    """
    client = await session.scalar(
        sa.select(OAuthClient).where(OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None))
    )
    if client is None or is_explorer_anchor(client.client_id):
        raise DomainError(ErrorCode.NOT_FOUND, f"client {client_id!r} not found")
    regions = await client_region_ids(session, client.id)
    return Principal(
        subject=f"client:{client.client_id}",
        actor_type=ActorType.CLIENT,
        organisation_id=client.organisation_id,
        scopes=parse_scope(client.scope) & ALL_SCOPES,
        region_ids=regions or None,
        client_id=client.client_id,
        evaluation_project_id=client.evaluation_project_id,
    )

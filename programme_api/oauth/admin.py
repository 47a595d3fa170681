"""Operator changes to what a client or a person may do: disable, enable, scopes, regions, role.

Each change is audited and announced (``invalidation.py``) in its own transaction, so every worker drops its
cached view of the tokens concerned: a disabled client's or person's tokens stop working, narrowed scopes or
regions apply to the very tokens already issued. The caller commits (the CLI's ``run_in_session``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import DomainError, ErrorCode, NotFound
from ..domain.models import ActorType, OAuthClient, OAuthClientRegion, Role, User, UserRegion, utcnow
from ..domain.principal import ALL_SCOPES
from . import audit
from .clients import format_scope, is_explorer_anchor, parse_scope
from .invalidation import announce_async, client_tag, user_tag
from .lookups import regions_by_slug
from .users import normalise_email

CLIENT_CHANGED = "oauth.client_changed"
USER_CHANGED = "auth.user_changed"


async def _client(session: AsyncSession, client_id: str) -> OAuthClient:
    row = await session.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    if row is None or is_explorer_anchor(row.client_id):
        raise NotFound(f"client {client_id!r}", "client_id")
    return row


async def _user(session: AsyncSession, email: str) -> User:
    row = await session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if row is None:
        raise NotFound(f"user {email!r}", "email")
    return row


async def _changed_client(session: AsyncSession, row: OAuthClient, details: dict[str, Any]) -> None:
    session.add(
        audit.audit_event(
            CLIENT_CHANGED,
            organisation_id=row.organisation_id,
            actor_type=ActorType.SYSTEM,
            actor_id="cli",
            target_type="oauth_client",
            target_id=row.client_id,
            details=details,
        )
    )
    await session.flush()
    await announce_async(session, client_tag(row.id))


async def _changed_user(session: AsyncSession, row: User, details: dict[str, Any]) -> None:
    session.add(
        audit.audit_event(
            USER_CHANGED,
            organisation_id=row.organisation_id,
            actor_type=ActorType.SYSTEM,
            actor_id="cli",
            target_type="user",
            target_id=str(row.id),
            details=details,
        )
    )
    await session.flush()
    await announce_async(session, user_tag(row.id))


async def set_client_enabled(session: AsyncSession, client_id: str, enabled: bool) -> None:
    """Disable (its tokens stop working, it gets no new ones) or enable a client again."""
    row = await _client(session, client_id)
    row.revoked_at = None if enabled else (row.revoked_at or utcnow())
    await _changed_client(session, row, {"enabled": enabled})


async def set_client_scopes(session: AsyncSession, client_id: str, scope: str) -> None:
    """Replace the client's allowed scopes; its existing tokens keep only the scopes still allowed."""
    scopes = parse_scope(scope)
    unknown = scopes - ALL_SCOPES
    if not scopes or unknown:
        raise DomainError(ErrorCode.INVALID, f"unknown or missing scopes: {format_scope(unknown) or '(none)'}", "scope")
    row = await _client(session, client_id)
    row.scope = format_scope(scopes)
    await _changed_client(session, row, {"scope": row.scope})


async def set_client_regions(session: AsyncSession, client_id: str, region_slugs: list[str]) -> None:
    """Bind the client to exactly these regions (none: the whole organisation)."""
    row = await _client(session, client_id)
    regions = await regions_by_slug(session, row.organisation_id, region_slugs)
    await session.execute(sa.delete(OAuthClientRegion).where(OAuthClientRegion.client_pk == row.id))
    for region in regions:
        session.add(OAuthClientRegion(organisation_id=row.organisation_id, client_pk=row.id, region_id=region.id))
    await _changed_client(session, row, {"regions": [region.slug for region in regions]})


async def set_user_active(session: AsyncSession, email: str, active: bool) -> None:
    """Disable (no sign-in, tokens stop working, no refresh) or enable a person again."""
    row = await _user(session, email)
    row.is_active = active
    await _changed_user(session, row, {"active": active})


async def set_user_regions(session: AsyncSession, email: str, region_slugs: list[str]) -> None:
    """Assign the person to exactly these regions (a coordinator with none reaches none)."""
    row = await _user(session, email)
    regions = await regions_by_slug(session, row.organisation_id, region_slugs)
    await session.execute(sa.delete(UserRegion).where(UserRegion.user_id == row.id))
    for region in regions:
        session.add(UserRegion(organisation_id=row.organisation_id, user_id=row.id, region_id=region.id))
    await _changed_user(session, row, {"regions": [region.slug for region in regions]})


async def set_user_role(session: AsyncSession, email: str, role: str) -> None:
    """Change the person's role; their tokens keep only the scopes the new role allows."""
    try:
        new_role = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise DomainError(ErrorCode.INVALID, f"role must be one of {choices}", "role") from None
    row = await _user(session, email)
    row.role = new_role
    await _changed_user(session, row, {"role": new_role.value})


async def set_client_rate_limit(session: AsyncSession, client_id: str, points: int | None) -> None:
    """Give the client a bucket of its own size (cost points; None: back to the operator's default)."""
    if points is not None and points < 1:
        raise DomainError(ErrorCode.INVALID, "the rate limit must be at least 1 point", "points")
    row = await _client(session, client_id)
    row.rate_limit_points = points
    await _changed_client(session, row, {"rate_limit_points": points})


async def client_rate_limit(session: AsyncSession, client_id: str) -> int | None:
    """The client's own bucket size, or None for the default (also for an unknown client)."""
    statement = sa.select(OAuthClient.rate_limit_points).where(OAuthClient.client_id == client_id)
    points: int | None = await session.scalar(statement)
    return points


async def set_client_trusted_documents_only(session: AsyncSession, client_id: str, trusted_only: bool) -> None:
    """Let the client run only the documents registered for it (``documents.py``), or any document again."""
    row = await _client(session, client_id)
    row.trusted_documents_only = trusted_only
    await _changed_client(session, row, {"trusted_documents_only": trusted_only})

"""People, their roles and regions, OAuth clients, and the OAuth server's own state.

Secrets (passwords, client secrets, codes, refresh tokens) are only ever stored hashed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, UUIDPrimaryKey, Versioned, enum_column, tenant_fk
from .enums import Role


class User(UUIDPrimaryKey, CreatedAt, Versioned, Base):
    """A person who signs in (coordinator, facilitator, admin, evaluator)."""

    __tablename__ = "users"

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = enum_column(Role, "user_role")
    evaluation_project_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="SET NULL")
    )
    is_active: Mapped[bool] = mapped_column(default=True)


class UserRegion(UUIDPrimaryKey, Base):
    """A region a coordinator (or facilitator) is assigned to."""

    __tablename__ = "user_regions"
    __table_args__ = (sa.UniqueConstraint("user_id", "region_id"),)

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    region_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("regions.id", ondelete="CASCADE"))


class OAuthClient(UUIDPrimaryKey, CreatedAt, Versioned, Base):
    """A partner app or evaluator's client, bound to one organisation and optionally to regions.

    A public client (browser app, the explorer) has no secret and must use PKCE.
    """

    __tablename__ = "oauth_clients"

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(200))
    scope: Mapped[str] = mapped_column(sa.String(500))
    grant_types: Mapped[list[Any]]
    redirect_uris: Mapped[list[Any]]
    evaluation_project_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="CASCADE")
    )
    revoked_at: Mapped[datetime | None]
    # Cost points the client's bucket holds (its rate limit); None: the operator's default.
    rate_limit_points: Mapped[int | None]
    # May run only the documents registered for it (``TrustedDocument``), nothing sent as free text.
    trusted_documents_only: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class OAuthClientRegion(UUIDPrimaryKey, Base):
    """A region a client is bound to; a client with none reaches the whole organisation (scopes permitting)."""

    __tablename__ = "oauth_client_regions"
    __table_args__ = (sa.UniqueConstraint("client_pk", "region_id"),)

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    client_pk: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    region_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("regions.id", ondelete="CASCADE"))


class OAuthAuthorizationCode(UUIDPrimaryKey, CreatedAt, Base):
    """A single-use authorization code (stored hashed); replaying a used one revokes what it issued."""

    __tablename__ = "oauth_authorization_codes"

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    client_pk: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(sa.String(500))
    scope: Mapped[str] = mapped_column(sa.String(500))
    code_challenge: Mapped[str] = mapped_column(sa.String(128))
    code_challenge_method: Mapped[str] = mapped_column(sa.String(10))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    token_family_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)


class OAuthToken(UUIDPrimaryKey, CreatedAt, Base):
    """An issued access token (by ``jti``) and its refresh token (hashed), grouped in a rotation family.

    Revoking sets ``revoked_at``; a reused refresh token revokes every token of its family.
    """

    __tablename__ = "oauth_tokens"
    __table_args__ = (sa.Index("ix_oauth_tokens_family_id", "family_id"),)

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    jti: Mapped[str] = mapped_column(sa.String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    client_pk: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(sa.String(500))
    access_expires_at: Mapped[datetime]
    refresh_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    refresh_expires_at: Mapped[datetime | None]
    refresh_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(UUIDPrimaryKey, CreatedAt, Base):
    """The first result of a mutation sent with an idempotency key, so a resend returns it without writing."""

    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "actor_id", "operation", "key"),)

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    actor_id: Mapped[str] = mapped_column(sa.String(100))
    operation: Mapped[str] = mapped_column(sa.String(80))
    key: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response: Mapped[dict[str, Any]]


class SignInSessionRecord(CreatedAt, Base):
    """A person's browser session after ``/login``: the cookie names it by a random token, stored here only
    hashed; signing out deletes the row, so any copy of the cookie ends with it. Per person, not tenant data."""

    __tablename__ = "sign_in_sessions"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime]

"""People, their roles and regions, OAuth clients, and the OAuth server's own state.

Secrets (passwords, client secrets, codes, refresh tokens) are only ever stored hashed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_fk, tenant_reference
from .enums import Role


class User(TenantKey, CreatedAt, Versioned, Base):
    """A person who signs in (coordinator, facilitator, admin, evaluator)."""

    __tablename__ = "users"

    # Unique across organisations: a person signs in by email before their organisation is known.
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = enum_column(Role, "user_role")
    evaluation_project_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="SET NULL")
    )
    is_active: Mapped[bool] = mapped_column(default=True)


class UserRegion(TenantKey, Base):
    """A region a coordinator (or facilitator) is assigned to."""

    __tablename__ = "user_regions"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "region_id", "organisation_id"),
        tenant_reference("user_id", "users"),
        tenant_reference("region_id", "regions"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    region_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)


class OAuthClient(TenantKey, CreatedAt, Versioned, Base):
    """A partner app or evaluator's client, bound to one organisation and optionally to regions.

    A public client (browser app, the explorer) has no secret and must use PKCE.
    """

    __tablename__ = "oauth_clients"
    # ``client_id`` is random (or, for the explorer's anchors, made from the organisation's id): unique across
    # organisations by construction, the constraint holds it per organisation.
    __table_args__ = (sa.UniqueConstraint("client_id", "organisation_id"),)

    client_id: Mapped[str] = mapped_column(sa.String(64))
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


class OAuthClientRegion(TenantKey, Base):
    """A region a client is bound to; a client with none reaches the whole organisation (scopes permitting)."""

    __tablename__ = "oauth_client_regions"
    __table_args__ = (
        sa.UniqueConstraint("client_pk", "region_id", "organisation_id"),
        tenant_reference("client_pk", "oauth_clients"),
        tenant_reference("region_id", "regions"),
    )

    client_pk: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    region_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)


class OAuthAuthorizationCode(TenantKey, CreatedAt, Base):
    """A single-use authorization code (stored hashed); replaying a used one revokes what it issued."""

    __tablename__ = "oauth_authorization_codes"
    __table_args__ = (
        sa.UniqueConstraint("code_hash", "organisation_id"),
        tenant_reference("client_pk", "oauth_clients"),
        tenant_reference("user_id", "users"),
    )

    code_hash: Mapped[str] = mapped_column(sa.String(64))
    client_pk: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    redirect_uri: Mapped[str] = mapped_column(sa.String(500))
    scope: Mapped[str] = mapped_column(sa.String(500))
    code_challenge: Mapped[str] = mapped_column(sa.String(128))
    code_challenge_method: Mapped[str] = mapped_column(sa.String(10))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    token_family_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)


class OAuthToken(TenantKey, CreatedAt, Base):
    """An issued access token (by ``jti``) and its refresh token (hashed), grouped in a rotation family.

    Revoking sets ``revoked_at``; a reused refresh token revokes every token of its family.
    """

    __tablename__ = "oauth_tokens"
    __table_args__ = (
        sa.Index("ix_oauth_tokens_family_id", "family_id"),
        sa.UniqueConstraint("jti", "organisation_id"),
        sa.UniqueConstraint("refresh_token_hash", "organisation_id"),
        tenant_reference("client_pk", "oauth_clients"),
        tenant_reference("user_id", "users"),
    )

    jti: Mapped[str] = mapped_column(sa.String(64))
    family_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    client_pk: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    scope: Mapped[str] = mapped_column(sa.String(500))
    access_expires_at: Mapped[datetime]
    refresh_token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    refresh_expires_at: Mapped[datetime | None]
    refresh_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(TenantKey, CreatedAt, Base):
    """The first result of a mutation sent with an idempotency key, so a resend returns it without writing."""

    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "actor_id", "operation", "key"),)

    actor_id: Mapped[str] = mapped_column(sa.String(100))
    operation: Mapped[str] = mapped_column(sa.String(80))
    key: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response: Mapped[dict[str, Any]]


class SignInSessionRecord(CreatedAt, Base):
    """A person's browser session after ``/login``: the cookie names it by a random token, stored here only
    hashed; signing out deletes the row, so any copy of the cookie ends with it.

    It carries the person's ``organisation_id`` so that its reference to the person holds the organisation
    (and the table can live beside ``users`` on a database sharded by organisation); row-level security keeps
    it to the bound organisation like every tenant table. The token is random, so
    its hash is unique across organisations by construction; the key holds it per organisation, and the ORM
    knows the row by the hash alone.
    """

    __tablename__ = "sign_in_sessions"
    __table_args__ = (tenant_reference("user_id", "users"),)
    __mapper_args__ = {"primary_key": ["token_hash"]}

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = tenant_fk(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    expires_at: Mapped[datetime]

"""People, their roles and regions, OAuth clients, and the OAuth server's own state.

Secrets (passwords, client secrets, codes, refresh tokens) are only ever stored hashed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_fk, tenant_reference
from .enums import Role


class User(TenantKey, CreatedAt, Versioned, Base):
    """A person who signs in (coordinator, facilitator, admin, evaluator)."""

    __tablename__ = "users"
    # Unique within the organisation here; across organisations through ``UserEmail``, which also tells
    # sign-in whose person an email is before any organisation is known.
    __table_args__ = (sa.UniqueConstraint("email", "organisation_id"),)

    email: Mapped[str] = mapped_column(sa.String(320))
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = enum_column(Role, "user_role")
    evaluation_project_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="SET NULL")
    )
    is_active: Mapped[bool] = mapped_column(default=True)


class UserEmail(Base):
    """Which organisation's person signs in with an email: one row per person, unique by email everywhere.

    Sign-in starts from an email alone, before any organisation is known, so it cannot ask ``users``, a tenant
    table that a database sharded by organisation spreads by ``organisation_id``; this small table is what
    it asks instead (a reference table in Citus terms, copied whole to every node, so it is no tenant table
    even though it names the organisation). Its primary key keeps an email to one person across the service,
    which ``users`` itself now holds only per organisation. No foreign key points to ``users``: a sharded
    database refuses one from a reference table to a distributed table. It is kept in step with ``users`` in
    the same transaction instead, by the listeners below for every change made through the ORM, and by the
    one bulk writer that bypasses them (``demo load``) itself.

    On PostgreSQL the service role reads and writes only its bound organisation's rows (the fail-closed
    ``tenant_isolation`` policy); the one way to learn another organisation's person from an email is
    ``programme_tenant_of('email', ...)``, which answers one exact email with its organisation and nothing
    else (migration 0018).
    """

    __tablename__ = "user_emails"
    __table_args__ = (sa.UniqueConstraint("user_id", "organisation_id"),)

    email: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    organisation_id: Mapped[uuid.UUID] = tenant_fk()


def _lookup_of(user: User) -> sa.ColumnElement[bool]:
    return sa.and_(UserEmail.user_id == user.id, UserEmail.organisation_id == user.organisation_id)


@event.listens_for(User, "after_insert")
def _claim_email(_mapper: Mapper[User], connection: Connection, user: User) -> None:
    """A new person's email is taken across the service (a clash fails the whole flush)."""
    values = {"email": user.email, "user_id": user.id, "organisation_id": user.organisation_id}
    connection.execute(sa.insert(UserEmail).values(values))


@event.listens_for(User, "after_update")
def _move_email(_mapper: Mapper[User], connection: Connection, user: User) -> None:
    """A changed email moves the person's lookup row (the old email becomes free)."""
    if sa.inspect(user).attrs.email.history.has_changes():
        connection.execute(sa.update(UserEmail).where(_lookup_of(user)).values(email=user.email))


@event.listens_for(User, "after_delete")
def _free_email(_mapper: Mapper[User], connection: Connection, user: User) -> None:
    """A deleted person's email may be taken again (an organisation's deletion cascades to both tables)."""
    connection.execute(sa.delete(UserEmail).where(_lookup_of(user)))


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

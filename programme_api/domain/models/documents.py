"""Trusted documents: the GraphQL operations a client has registered ahead of time."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, tenant_reference


class TrustedDocument(TenantKey, CreatedAt, Base):
    """One document registered for one client: the text, its SHA-256, and the id the client's build gave it.

    The client may send it by hash (``extensions.persistedQuery.sha256Hash``) or by its id (``documentId``)
    instead of the text; a client marked trusted-only (``OAuthClient.trusted_documents_only``) may run
    nothing else. Documents are never changed: the same id with another text is refused at registration.
    """

    __tablename__ = "trusted_documents"
    __table_args__ = (
        sa.UniqueConstraint("client_pk", "sha256", "organisation_id"),
        sa.UniqueConstraint("client_pk", "document_id", "organisation_id"),
        tenant_reference("client_pk", "oauth_clients"),
    )

    client_pk: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    document_id: Mapped[str] = mapped_column(sa.String(200))
    document: Mapped[str] = mapped_column(sa.Text)

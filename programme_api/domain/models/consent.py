"""Consent per participant and purpose, kept as history: a withdrawal closes the row, it never deletes it."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, enum_column, tenant_reference
from .enums import ConsentPurpose


class Consent(TenantKey, CreatedAt, Base):
    """One act of consent for one purpose; it is in force while ``withdrawn_at`` is empty."""

    __tablename__ = "consents"
    __table_args__ = (
        sa.CheckConstraint("withdrawn_at IS NULL OR withdrawn_at >= given_at", name="withdrawn_after_given"),
        sa.Index("ix_consents_participant_id_purpose", "participant_id", "purpose"),
        tenant_reference("participant_id", "participants"),
        tenant_reference("recorded_by_user_id", "users", ondelete=None),
        tenant_reference("withdrawn_by_user_id", "users", ondelete=None),
    )

    participant_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    purpose: Mapped[ConsentPurpose] = enum_column(ConsentPurpose, "consent_purpose")
    form_version: Mapped[str] = mapped_column(sa.String(40))
    given_at: Mapped[datetime]
    recorded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)

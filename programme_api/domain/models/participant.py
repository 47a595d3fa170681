"""Participants (pseudonymous members) and their enrolments in groups."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_reference, utcnow
from .enums import EnrolmentStatus


class Participant(TenantKey, CreatedAt, Versioned, Base):
    """A member known by a reference code; personal fields are minimal and readable only with participants:read.

    ``erased_at`` marks a participant whose personal data has been erased on request: the row stays so that
    counts already published stay consistent, but the personal fields are emptied.
    """

    __tablename__ = "participants"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "reference"), tenant_reference("region_id", "regions"))

    region_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    reference: Mapped[str] = mapped_column(sa.String(32))
    preferred_name: Mapped[str | None] = mapped_column(sa.String(200))
    contact_email: Mapped[str | None] = mapped_column(sa.String(320))
    contact_phone: Mapped[str | None] = mapped_column(sa.String(40))
    erased_at: Mapped[datetime | None]


class Enrolment(TenantKey, CreatedAt, Versioned, Base):
    """A participant's place in a group: waitlisted, active, or left; the waitlist is served first come first."""

    __tablename__ = "enrolments"
    __table_args__ = (
        sa.UniqueConstraint("group_id", "participant_id", "organisation_id"),
        tenant_reference("participant_id", "participants"),
        tenant_reference("group_id", "groups"),
        sa.Index("ix_enrolments_group_id_status", "group_id", "status"),
        sa.Index("ix_enrolments_organisation_id_participant_id", "organisation_id", "participant_id"),
    )

    participant_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    group_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    status: Mapped[EnrolmentStatus] = enum_column(EnrolmentStatus, "enrolment_status")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]

"""Group sessions (single meetings), who facilitated them, and attendance."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_reference, utcnow
from .enums import AttendanceStatus, SessionSource, SessionStatus


class GroupSession(TenantKey, CreatedAt, Versioned, Base):
    """One meeting of a group, generated from its schedule or added by hand.

    ``dropin_count`` is the anonymous headcount of people who came without being enrolled.
    """

    __tablename__ = "group_sessions"
    __table_args__ = (
        sa.UniqueConstraint("group_id", "starts_at", "organisation_id"),
        tenant_reference("group_id", "groups"),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("dropin_count >= 0 AND dropin_count <= 1000", name="dropin_count_range"),
        sa.CheckConstraint(
            "(status = 'cancelled') = (cancellation_reason IS NOT NULL)", name="cancellation_has_reason"
        ),
        sa.Index("ix_group_sessions_organisation_id_starts_at", "organisation_id", "starts_at"),
        # A group's sessions in a period (nested pages, roll-ups), led by the tenant like every lookup.
        sa.Index("ix_group_sessions_organisation_id_group_id_starts_at", "organisation_id", "group_id", "starts_at"),
        # A page of a group's sessions in order of start: the unique key, which holds the organisation, no longer
        # tells SQLite's planner that this order is total (it then read the organisation's sessions by start).
        sa.Index("ix_group_sessions_group_id_starts_at_id", "group_id", "starts_at", "id"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[SessionStatus] = enum_column(SessionStatus, "session_status", default=SessionStatus.SCHEDULED)
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(500))
    source: Mapped[SessionSource] = enum_column(SessionSource, "session_source", default=SessionSource.MANUAL)
    dropin_count: Mapped[int] = mapped_column(default=0)


class SessionFacilitator(TenantKey, Base):
    """A facilitator who was present at a session."""

    __tablename__ = "session_facilitators"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "facilitator_id", "organisation_id"),
        tenant_reference("session_id", "group_sessions"),
        tenant_reference("facilitator_id", "facilitators"),
        sa.Index("ix_session_facilitators_organisation_id_session_id", "organisation_id", "session_id"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    facilitator_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)


class Attendance(TenantKey, Base):
    """Whether one enrolled participant came to one session."""

    __tablename__ = "attendance"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "participant_id", "organisation_id"),
        tenant_reference("session_id", "group_sessions"),
        tenant_reference("participant_id", "participants"),
        # A session's marks (counts, registers) and a participant's (absences): organisation first, so the
        # planner never settles for the organisation-only index (it did without statistics).
        sa.Index("ix_attendance_organisation_id_session_id", "organisation_id", "session_id"),
        sa.Index("ix_attendance_organisation_id_participant_id", "organisation_id", "participant_id"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    participant_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    status: Mapped[AttendanceStatus] = enum_column(AttendanceStatus, "attendance_status")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

"""Peer-support groups, their recurring schedule, and who facilitates them."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, Versioned, enum_column, tenant_reference, utcnow
from .enums import DeliveryMode, FacilitatorCheckKind, FacilitatorRole, GroupStatus, ScheduleFrequency, Topic


class Group(TenantKey, CreatedAt, Versioned, Base):
    """A facilitated group that meets on a recurring schedule in one region.

    The schedule lives on the group (a group has at most one): frequency, weekday, local start time and
    duration, the date the pattern counts from (for fortnightly) and, for monthly, which weekday of the
    month (1-4, or -1 for the last).
    """

    __tablename__ = "groups"
    __table_args__ = (
        sa.CheckConstraint("capacity >= 1 AND capacity <= 500", name="capacity_range"),
        sa.CheckConstraint("schedule_weekday IS NULL OR (schedule_weekday BETWEEN 0 AND 6)", name="weekday_range"),
        sa.CheckConstraint(
            "schedule_week_of_month IS NULL OR schedule_week_of_month IN (-1, 1, 2, 3, 4)",
            name="week_of_month_range",
        ),
        sa.CheckConstraint(
            "schedule_duration_minutes IS NULL OR (schedule_duration_minutes BETWEEN 15 AND 480)",
            name="duration_range",
        ),
        sa.CheckConstraint(
            "(schedule_frequency IS NULL) = (schedule_weekday IS NULL)"
            " AND (schedule_frequency IS NULL) = (schedule_start_time IS NULL)"
            " AND (schedule_frequency IS NULL) = (schedule_duration_minutes IS NULL)"
            " AND (schedule_frequency IS NULL) = (schedule_anchor_date IS NULL)",
            name="schedule_complete",
        ),
        sa.Index("ix_groups_organisation_id_region_id", "organisation_id", "region_id"),
        sa.UniqueConstraint("organisation_id", "external_reference"),
        tenant_reference("region_id", "regions"),
    )

    region_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    name: Mapped[str] = mapped_column(sa.String(200))
    topic: Mapped[Topic] = enum_column(Topic, "topic")
    delivery_mode: Mapped[DeliveryMode] = enum_column(DeliveryMode, "delivery_mode")
    venue: Mapped[str | None] = mapped_column(sa.String(300))
    capacity: Mapped[int] = mapped_column(default=12)
    status: Mapped[GroupStatus] = enum_column(GroupStatus, "group_status", default=GroupStatus.ACTIVE)
    schedule_frequency: Mapped[ScheduleFrequency | None] = enum_column(ScheduleFrequency, "schedule_frequency")
    schedule_weekday: Mapped[int | None] = mapped_column(sa.SmallInteger)
    schedule_week_of_month: Mapped[int | None] = mapped_column(sa.SmallInteger)
    schedule_start_time: Mapped[time | None] = mapped_column(sa.Time)
    schedule_duration_minutes: Mapped[int | None] = mapped_column(sa.SmallInteger)
    schedule_anchor_date: Mapped[date | None] = mapped_column(sa.Date)
    # The organisation's own code for the group (spreadsheet imports find it again by this).
    external_reference: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Facilitator(TenantKey, CreatedAt, Versioned, Base):
    """A trained volunteer or worker; an expired background check blocks new assignments."""

    __tablename__ = "facilitators"
    __table_args__ = (
        sa.UniqueConstraint("organisation_id", "external_reference"),
        sa.UniqueConstraint("user_id", "organisation_id"),
        tenant_reference("user_id", "users", ondelete=None),
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    training_completed_on: Mapped[date | None] = mapped_column(sa.Date)
    background_check_expires_on: Mapped[date | None] = mapped_column(sa.Date)
    # Archived facilitators keep their history but are left out of lists and cannot be assigned.
    archived_at: Mapped[datetime | None]
    # The organisation's own code for the person (spreadsheet imports find them again by this).
    external_reference: Mapped[str | None] = mapped_column(sa.String(64))


class FacilitatorCheck(TenantKey, CreatedAt, Base):
    """One completed training or background check, kept as history; the facilitator's own columns hold the
    latest, which compliance is computed from."""

    __tablename__ = "facilitator_checks"
    __table_args__ = (tenant_reference("facilitator_id", "facilitators"),)

    facilitator_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    kind: Mapped[FacilitatorCheckKind] = enum_column(FacilitatorCheckKind, "facilitator_check_kind")
    completed_on: Mapped[date] = mapped_column(sa.Date)
    expires_on: Mapped[date | None] = mapped_column(sa.Date)
    reference: Mapped[str | None] = mapped_column(sa.String(200))
    recorded_by: Mapped[str] = mapped_column(sa.String(200))


class FacilitatorAssignment(TenantKey, CreatedAt, Base):
    """A facilitator's role on one group (lead or co-facilitator)."""

    __tablename__ = "facilitator_assignments"
    __table_args__ = (
        sa.UniqueConstraint("group_id", "facilitator_id", "organisation_id"),
        tenant_reference("group_id", "groups"),
        tenant_reference("facilitator_id", "facilitators"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    facilitator_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    role: Mapped[FacilitatorRole] = enum_column(FacilitatorRole, "facilitator_role")

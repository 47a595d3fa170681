"""Survey instruments (versioned), responses at timepoints, and the safeguarding alerts risk answers raise."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, UUIDPrimaryKey, enum_column, tenant_reference
from .enums import Timepoint


class SurveyInstrument(UUIDPrimaryKey, CreatedAt, Base):
    """One version of a questionnaire and its scoring rules.

    Shipped instruments (SWEMWBS, PHQ-9, ...) have no organisation: they are reference data every tenant
    reads. Custom instruments belong to the organisation that defined them. ``definition`` holds the items,
    response scale and declared scoring; item wording is stored only where its licence allows.
    """

    __tablename__ = "survey_instruments"
    __table_args__ = (
        sa.UniqueConstraint("organisation_id", "code", "version"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )

    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(200))
    definition: Mapped[dict[str, Any]]
    wording_licensed: Mapped[bool] = mapped_column(default=False)


class SurveyResponse(TenantKey, CreatedAt, Base):
    """A participant's answers to one instrument version at one timepoint, with the score computed on entry."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "instrument_id", "timepoint", "organisation_id"),
        tenant_reference("participant_id", "participants"),
        tenant_reference("group_id", "groups"),
        tenant_reference("recorded_by_user_id", "users", ondelete=None),
        sa.Index("ix_survey_responses_organisation_id_completed_at", "organisation_id", "completed_at"),
    )

    participant_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    instrument_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("survey_instruments.id", ondelete="RESTRICT"), index=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    timepoint: Mapped[Timepoint] = enum_column(Timepoint, "timepoint")
    answers: Mapped[dict[str, Any]]
    raw_score: Mapped[float | None]
    score: Mapped[float | None]
    band: Mapped[str | None] = mapped_column(sa.String(40))
    completed_at: Mapped[datetime]
    recorded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)


class SafeguardingAlert(TenantKey, CreatedAt, Base):
    """Raised when a response carries a risk answer; the group's coordinators acknowledge it with a note."""

    __tablename__ = "safeguarding_alerts"
    __table_args__ = (
        sa.UniqueConstraint("response_id", "organisation_id"),
        tenant_reference("response_id", "survey_responses"),
        tenant_reference("participant_id", "participants"),
        tenant_reference("group_id", "groups"),
        tenant_reference("acknowledged_by_user_id", "users", ondelete=None),
    )

    response_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    participant_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    group_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    reason: Mapped[str] = mapped_column(sa.String(300))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    acknowledgement_note: Mapped[str | None] = mapped_column(sa.Text)

"""Survey instruments (versioned), responses at timepoints, and the safeguarding alerts risk answers raise."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, UUIDPrimaryKey, enum_column, tenant_fk
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


class SurveyResponse(UUIDPrimaryKey, CreatedAt, Base):
    """A participant's answers to one instrument version at one timepoint, with the score computed on entry."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "instrument_id", "timepoint"),
        sa.Index("ix_survey_responses_organisation_id_completed_at", "organisation_id", "completed_at"),
    )

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    participant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("participants.id", ondelete="CASCADE"))
    instrument_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("survey_instruments.id", ondelete="RESTRICT"), index=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    timepoint: Mapped[Timepoint] = enum_column(Timepoint, "timepoint")
    answers: Mapped[dict[str, Any]]
    raw_score: Mapped[float | None]
    score: Mapped[float | None]
    band: Mapped[str | None] = mapped_column(sa.String(40))
    completed_at: Mapped[datetime]
    recorded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))


class SafeguardingAlert(UUIDPrimaryKey, CreatedAt, Base):
    """Raised when a response carries a risk answer; the group's coordinators acknowledge it with a note."""

    __tablename__ = "safeguarding_alerts"

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    response_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("survey_responses.id", ondelete="CASCADE"), unique=True
    )
    participant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("participants.id", ondelete="CASCADE"))
    group_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(sa.String(300))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    acknowledgement_note: Mapped[str | None] = mapped_column(sa.Text)

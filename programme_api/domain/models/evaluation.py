"""Evaluation projects: what an evaluator may see, and the key that makes its pseudonyms."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, UUIDPrimaryKey, Versioned, enum_column, tenant_fk
from .enums import ConsentPurpose, InvitationStatus


class EvaluationProject(UUIDPrimaryKey, CreatedAt, Versioned, Base):
    """An evaluator's scope: organisations, instruments, dates and the consent purpose required.

    ``pseudonym_key`` is this project's own secret: pseudonyms are keyed hashes, stable within the project
    and unlinkable across projects. The owning organisation is ``organisation_id``; other organisations
    that share data with the project are listed in ``evaluation_project_organisations``.

    A project spans organisations by design, so it is not keyed by its owner the way tenant rows are: its
    id and its slug are unique across organisations, and the rows that name a project (its members, its
    evaluators and their clients, from any organisation taking part) refer to it by id alone. On a database
    sharded by organisation it is a reference table (small, copied to every node).
    """

    __tablename__ = "evaluation_projects"
    __table_args__ = (
        sa.CheckConstraint("suppression_threshold >= 1", name="suppression_threshold_positive"),
        sa.CheckConstraint("ends_on >= starts_on", name="ends_after_start"),
    )

    organisation_id: Mapped[uuid.UUID] = tenant_fk()
    slug: Mapped[str] = mapped_column(sa.String(63), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    instrument_codes: Mapped[list[Any]]
    starts_on: Mapped[date] = mapped_column(sa.Date)
    ends_on: Mapped[date] = mapped_column(sa.Date)
    consent_purpose: Mapped[ConsentPurpose] = enum_column(ConsentPurpose, "evaluation_consent_purpose")
    suppression_threshold: Mapped[int] = mapped_column(default=10)
    pseudonym_key: Mapped[bytes] = mapped_column(sa.LargeBinary(64))
    dose_bands: Mapped[list[Any] | None] = mapped_column(sa.JSON(), default=None)
    """Lower bounds of the bands of sessions attended for dose-response tables; null: 0-3, 4-7, 8+."""
    # Once set, the project's evaluators read nothing (their clients stay, refused).
    closed_at: Mapped[datetime | None]


class EvaluationProjectOrganisation(TenantKey, Base):
    """An organisation whose data an evaluation project covers (the owner included).

    A row here is what the evaluators' reads follow; for any organisation but the owner it exists only while
    that organisation has accepted (``EvaluationProjectInvitation``) or the operator shared the project.
    """

    __tablename__ = "evaluation_project_organisations"
    __table_args__ = (sa.UniqueConstraint("evaluation_project_id", "organisation_id"),)

    evaluation_project_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="CASCADE")
    )


class EvaluationProjectInvitation(TenantKey, CreatedAt, Versioned, Base):
    """The owner's invitation of another organisation to an evaluation project, and that organisation's answer.

    Visible to both organisations (``organisation_id`` is the invited one, ``owner_organisation_id`` the
    project's owner): the owner invites and withdraws, the invited organisation's admin accepts and leaves.
    Kept after a withdrawal or departure, so the history of who took part stays with the project.
    """

    __tablename__ = "evaluation_project_invitations"
    __table_args__ = (sa.UniqueConstraint("evaluation_project_id", "organisation_id"),)

    owner_organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    evaluation_project_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("evaluation_projects.id", ondelete="CASCADE")
    )
    status: Mapped[InvitationStatus] = enum_column(InvitationStatus, "evaluation_invitation_status")
    responded_at: Mapped[datetime | None]

"""The audit log: every write, every export, every read of personal or health data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UUIDPrimaryKey, enum_column, utcnow
from .enums import ActorType


class AuditEvent(UUIDPrimaryKey, Base):
    """Who did what to which row, when, in which request.

    ``organisation_id`` is empty only for events with no tenant (a failed sign-in for an unknown email).
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_organisation_id_occurred_at", "organisation_id", "occurred_at"),)

    organisation_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("organisations.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[ActorType] = enum_column(ActorType, "actor_type")
    actor_id: Mapped[str | None] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(80))
    target_type: Mapped[str | None] = mapped_column(sa.String(60))
    target_id: Mapped[str | None] = mapped_column(sa.String(100))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

"""Organisations (the tenants) and their regions."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, TenantKey, UUIDPrimaryKey, Versioned


class Organisation(UUIDPrimaryKey, CreatedAt, Versioned, Base):
    """A charity or health partner running groups; every other row belongs to exactly one."""

    __tablename__ = "organisations"
    __table_args__ = (sa.CheckConstraint("suppression_threshold >= 1", name="suppression_threshold_positive"),)

    slug: Mapped[str] = mapped_column(sa.String(63), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Europe/London")
    suppression_threshold: Mapped[int] = mapped_column(default=10)
    # The consent form version recorded when a consent names none.
    default_consent_form_version: Mapped[str | None] = mapped_column(sa.String(100))


class Region(TenantKey, CreatedAt, Versioned, Base):
    """An area of an organisation; coordinators and region-bound clients see only their regions."""

    __tablename__ = "regions"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "slug"),)

    slug: Mapped[str] = mapped_column(sa.String(63))
    name: Mapped[str] = mapped_column(sa.String(200))

"""Declarative base, shared column types and mixins for every table.

Every tenant table carries ``organisation_id`` so tenants can be filtered (and sharded) by one column,
primary keys are random UUIDs so IDs cannot be guessed, and timestamps are stored in UTC and always
come back timezone-aware, on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of datetime the model stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no timezone-aware type and hands back naive values; PostgreSQL's ``timestamptz`` returns the
    session's zone. Normalising here means no other code has to care which database it runs on.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # asyncpg already hands back UTC: the common, cheap case
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_column(enum_type: type[enum.StrEnum], name: str, **kwargs: Any) -> Mapped[Any]:
    """A VARCHAR column restricted by a CHECK constraint to the enum's values.

    Non-native enums keep SQLite and PostgreSQL identical and let a value be added in a plain migration.
    """
    return mapped_column(
        sa.Enum(
            enum_type,
            name=name,
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda members: [m.value for m in members],
            validate_strings=True,
        ),
        **kwargs,
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON(), list[Any]: sa.JSON()}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)


class CreatedAt:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Versioned:
    """Optimistic locking: writers send the version they read; a stale one is a conflict, not a lost update."""

    version: Mapped[int] = mapped_column(default=1)


def tenant_fk() -> Mapped[uuid.UUID]:
    """The ``organisation_id`` column every tenant table carries (indexed: every query filters on it)."""
    return mapped_column(sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True)

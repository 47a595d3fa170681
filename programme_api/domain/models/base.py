"""Declarative base, shared column types and mixins for every table.

Every tenant table carries ``organisation_id`` so tenants can be filtered (and sharded) by one column,
primary keys are random UUIDs so IDs cannot be guessed, and timestamps are stored in UTC and always
come back timezone-aware, on SQLite as well as PostgreSQL.

A tenant table's keys all include ``organisation_id`` (``TenantKey``, ``tenant_reference``), as a database
sharded by organisation (Citus) requires of every unique constraint and foreign key: the table can then be
distributed by that column, unchanged. ``tests/test_tenant_keys.py`` reads the migrated catalog to hold
every tenant table to it and lists the few deliberate exceptions.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
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


def tenant_fk(*, primary_key: bool = False) -> Mapped[uuid.UUID]:
    """The ``organisation_id`` column every tenant table carries (indexed: every query filters on it)."""
    return mapped_column(sa.ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=primary_key, index=True)


class TenantKey:
    """The keys of a row that belongs to one organisation.

    In the database the primary key is ``(id, organisation_id)``: it holds the distribution column, and
    ``id`` leads so a lookup by id alone still finds the row through the key's index. ``id`` on its own stays
    unique (a random UUID) and is what the ORM maps as the row's identity, so ``session.get(Model, id)``
    and every query by id keep working unchanged.
    """

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = tenant_fk(primary_key=True)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"primary_key": ["id"]}


def tenant_reference(column: str, parent: str, ondelete: str | None = "CASCADE") -> sa.ForeignKeyConstraint:
    """A reference from a tenant table to a row of another tenant table: ``(column, organisation_id)`` to
    the parent's ``(id, organisation_id)``.

    Because the organisation is part of the reference, the database itself refuses a row that points at
    another organisation's row, whatever the code above it does; and on a database sharded by organisation
    the reference stays within one shard. The constraint keeps the name the single-column reference had.

    A nullable reference to a person (who recorded or acknowledged something, the facilitator's account)
    does not empty itself when the person goes, since ``ON DELETE SET NULL`` would empty ``organisation_id``
    too, and a sharded database refuses it on a key that holds the distribution column. Deleting a person
    that rows still name is refused instead; the service deactivates people and never deletes them.
    Such references pass ``ondelete=None`` (no action); the rest go with their parent (``CASCADE``).
    """
    return sa.ForeignKeyConstraint(
        [column, "organisation_id"], [f"{parent}.id", f"{parent}.organisation_id"], ondelete=ondelete
    )


class CreatedAt:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Versioned:
    """Optimistic locking: writers send the version they read; a stale one is a conflict, not a lost update."""

    version: Mapped[int] = mapped_column(default=1)

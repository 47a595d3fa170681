"""What every write goes through besides its own change: reach, versions, and the audit trail.

* **Reach.** A write finds its targets with the same row filters as ``access.readable`` (organisation,
  regions, a facilitator's own groups), so a foreign or out-of-region ID is NOT_FOUND exactly as on reads. The
  read scope is not demanded: each write has already required its own write scope, and a partner app granted
  ``attendance:write`` must not also need ``participants:read`` to record a register.
* **Versions.** Updates compare the version the caller read with the row's and bump it in one
  ``UPDATE ... WHERE version = :seen``, so of two concurrent writers exactly one wins and the other gets a
  CONFLICT instead of silently overwriting.
* **Audit.** Every write adds an event (who, what, which row, the request id) in the same transaction, so
  the log holds exactly the writes that were committed. Details name fields and counts, never personal data.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ..web.request_id import current_request_id
from . import access
from .errors import DomainError, ErrorCode, NotFound
from .models import AuditEvent
from .principal import Principal

M = TypeVar("M")


class VersionedRow(Protocol):
    id: uuid.UUID
    version: int


class Identified(Protocol):
    id: uuid.UUID


def reach_filter(principal: Principal, model: type[Any]) -> sa.ColumnElement[bool]:
    """The model's access-rule WHERE clause for ``principal``, without the rule's read scope (see module doc)."""
    _read_scope, row_filter = access.RULES[model]
    return row_filter(principal)


def in_reach(principal: Principal, model: type[M]) -> sa.Select[M]:
    """``SELECT model`` limited to the rows ``principal`` reaches."""
    return access.mark_checked(sa.select(model).where(reach_filter(principal, model)))


async def get_in_reach(
    session: AsyncSession,
    principal: Principal,
    model: type[M],
    row_id: uuid.UUID,
    what: str,
    field: str | None = None,
    *,
    lock: bool = False,
) -> M:
    """One row within reach, or NOT_FOUND. ``lock`` takes a row lock (PostgreSQL) to serialise writers."""
    statement = in_reach(principal, model).where(model.id == row_id)  # type: ignore[attr-defined]
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise NotFound(what, field)
    return row


async def bump_version(session: AsyncSession, row: VersionedRow, seen: int, what: str) -> None:
    """Compare-and-set the row's version: CONFLICT when ``seen`` is not the stored version."""
    if row.version != seen:
        raise _conflict(what, row.version)
    table = cast(sa.Table, type(row).__table__)  # type: ignore[attr-defined]
    result = await session.execute(
        sa.update(table).where(table.c.id == row.id, table.c.version == seen).values(version=seen + 1)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise _conflict(what, None)
    # The database already holds the new version; tell the ORM so its own UPDATE does not repeat it.
    set_committed_value(row, "version", seen + 1)


def _conflict(what: str, current: int | None) -> DomainError:
    now = f" (now at version {current})" if current is not None else ""
    return DomainError(
        ErrorCode.CONFLICT, f"the {what} was changed by someone else{now}: read it again and retry", "version"
    )


async def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target: Identified,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add the audit event of one write (flushed with it, committed or rolled back with it)."""
    event = AuditEvent(
        organisation_id=principal.organisation_id,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        action=action,
        target_type=type(target).__name__,
        target_id=str(target.id),
        request_id=current_request_id(),
        details=details or {},
    )
    session.add(event)
    await session.flush()
    return event

"""What every write goes through besides its own change: versions and the audit trail.

(Writes find their targets with ``access.in_reach`` / ``access.get_in_reach``: the read rules without the
read scope.)

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

from ..request_context import current_request_id
from .errors import DomainError, ErrorCode
from .models import AuditEvent
from .principal import Principal

M = TypeVar("M")


class VersionedRow(Protocol):
    id: uuid.UUID
    version: int


class Identified(Protocol):
    id: uuid.UUID


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

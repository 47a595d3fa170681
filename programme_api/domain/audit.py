"""What every write goes through besides its own change (versions, the audit trail), and audited reads.

(Writes find their targets with ``access.in_reach`` / ``access.get_in_reach``: the read rules without the
read scope.)

* **Versions.** Updates compare the version the caller read with the row's and bump it in one
  ``UPDATE ... WHERE version = :seen``, so of two concurrent writers exactly one wins and the other gets a
  CONFLICT instead of silently overwriting.
* **Audit.** Every write adds an event (who, what, which row, the request id) in the same transaction, so
  the log holds exactly the writes that were committed. Details name fields and counts, never personal data.
* **Audited reads** (health data, participants' personal fields, exports) are the opposite case: the record
  must outlive the request's unit of work, which rolls back on any error. Each read is noted in the
  request's ``ReadLog`` with ``record_read``; the edge writes the log with an ``AuditWriter`` in a
  transaction of its own, committed at once, after the request's unit of work has ended (committed or rolled
  back) and before any byte of the answer is sent. If that write fails, the answer is withheld
  (``AuditUnavailable``). One event per request per (action, target type), naming ids, count and fields.

  Why after the unit of work and not beside it: SQLite has one writer, and a request that wrote holds the
  write lock until it commits, so a second connection could not write the audit row before then. After it,
  every backend behaves alike. In the service the writer's sessions come from the engine (a pooled
  connection of their own); tests build the app on sessions joined to one rolled-back connection, where the
  writer's commit becomes a released savepoint taken after the request's own savepoint has gone, so it
  survives the request's rollback exactly as it would on its own connection, and tests read it back there.
  Tests swap ``Runtime.audit_writer`` to simulate a failing audit log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from ..request_context import current_request_id
from .errors import DomainError, ErrorCode
from .models import AuditEvent, utcnow
from .principal import Principal
from .tenancy import bind_tenant

M = TypeVar("M")
log = logging.getLogger(__name__)


class VersionedRow(Protocol):
    id: uuid.UUID
    version: int


class Identified(Protocol):
    id: uuid.UUID


async def bump_version(session: AsyncSession, row: VersionedRow, seen: int, what: str) -> None:
    """Compare-and-set the row's version: CONFLICT when ``seen`` is not the stored version."""
    if row.version != seen:
        raise conflict(what, row.version)
    table = cast(sa.Table, type(row).__table__)  # type: ignore[attr-defined]
    result = await session.execute(
        sa.update(table).where(table.c.id == row.id, table.c.version == seen).values(version=seen + 1)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise conflict(what, None)
    # The database already holds the new version; tell the ORM so its own UPDATE does not repeat it.
    set_committed_value(row, "version", seen + 1)


def conflict(what: str, current: int | None) -> DomainError:
    """The refusal of a write whose caller read an older version (``current`` when known)."""
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
    event = AuditEvent(**event_values(principal, action, type(target).__name__, target.id, details))
    session.add(event)
    await session.flush()
    return event


def event_values(
    principal: Principal, action: str, target_type: str, target_id: uuid.UUID, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The columns of one write's audit event: for ``record``, and for a write path that inserts the event in
    the same statement as its change (``insert_event``) to save a round trip."""
    return {
        "id": uuid.uuid4(),
        "organisation_id": principal.organisation_id,
        "occurred_at": utcnow(),
        "actor_type": principal.actor_type,
        "actor_id": principal.actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "request_id": current_request_id(),
        "details": details or {},
    }


def insert_event(values: dict[str, Any]) -> sa.Insert:
    """The INSERT of one audit event (from ``event_values``), to run alone or as a CTE of the write it records."""
    return sa.insert(AuditEvent).values(values)


async def record_many(
    session: AsyncSession,
    principal: Principal,
    action: str,
    targets: Sequence[tuple[Identified, dict[str, Any]]],
) -> None:
    """``record`` for a batch of writes of one kind (a spreadsheet import): one event per row, one flush."""
    session.add_all(
        AuditEvent(**event_values(principal, action, type(target).__name__, target.id, details))
        for target, details in targets
    )
    await session.flush()


# --- audited reads ------------------------------------------------------------------------------------------


class AuditUnavailable(DomainError):
    """The audit log could not be written, so the audited data it would have recorded is not sent."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.AUDIT_UNAVAILABLE, "the audit log could not be written; the data was withheld")


@dataclass
class _Read:
    ids: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadLog:
    """The audited reads of one request (or export), kept until the edge writes them (``write_reads``)."""

    reads: dict[tuple[str, str], _Read] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reads)

    def events(self, principal: Principal, request_id: str | None) -> list[AuditEvent]:
        """One event per (action, target type); the target id is filled in when exactly one row was read."""
        events = []
        for (action, target_type), read in sorted(self.reads.items()):
            ids = sorted(read.ids)
            details: dict[str, Any] = {**read.details, "ids": ids, "count": len(ids)}
            if read.fields:
                details["fields"] = sorted(read.fields)
            events.append(
                AuditEvent(
                    organisation_id=principal.organisation_id,
                    actor_type=principal.actor_type,
                    actor_id=principal.actor_id,
                    action=action,
                    target_type=target_type,
                    target_id=ids[0] if len(ids) == 1 else None,
                    request_id=request_id,
                    details=details,
                )
            )
        return events


def record_read(
    reads: ReadLog,
    target_type: str,
    ids: Iterable[uuid.UUID | str] = (),
    fields: Iterable[str] = (),
    *,
    action: str | None = None,
    **details: Any,
) -> None:
    """Note that rows of ``target_type`` were read (which ids, which fields): every audited read calls this.

    ``action`` defaults to ``<target type>.read``. ``details`` must name what was read (filters, formats),
    never personal data: ids and field names only; ``None`` values are left out. Nothing is written here:
    see ``write_reads``.
    """
    read = reads.reads.setdefault((action or f"{target_type}.read", target_type), _Read())
    read.ids.update(str(row_id) for row_id in ids)
    read.fields.update(fields)
    read.details.update((key, value) for key, value in details.items() if value is not None)


class AuditWriter(Protocol):
    """Writes audit events in a transaction of its own and commits it before returning."""

    async def write(self, organisation_id: uuid.UUID, events: Sequence[AuditEvent]) -> None: ...


@dataclass(frozen=True)
class SessionAuditWriter:
    """The service's writer: a new session (a pooled connection of the engine) per batch, committed at once.

    The transaction is bound to the tenant first, so row-level security admits the rows (migration 0006).
    """

    session_maker: async_sessionmaker[AsyncSession]

    async def write(self, organisation_id: uuid.UUID, events: Sequence[AuditEvent]) -> None:
        async with self.session_maker() as session:
            await bind_tenant(session, organisation_id, regions=None)
            session.add_all(events)
            await session.commit()


async def write_reads(writer: AuditWriter, reads: ReadLog, principal: Principal) -> None:
    """Write the request's audited reads now, in their own transaction; AuditUnavailable when that fails.

    Call it after the request's unit of work has ended and before the answer is sent (see the module
    docstring). The log is emptied, so a second call writes only what was read since.
    """
    if not reads:
        return
    events = reads.events(principal, current_request_id())
    reads.reads.clear()
    try:
        await writer.write(principal.organisation_id, events)
    except Exception as error:
        log.exception("audited reads could not be written; withholding the data")
        raise AuditUnavailable() from error

"""Recording a session's register: every participant's attendance and the drop-in headcount, in one call.

The register sent is the whole truth for the session: recording it again replaces the earlier one (statuses
updated in place, people no longer listed removed), so a facilitator can correct a register by resending it.
Only participants enrolled in the session's group count: active now, or left after the session began.

The work is a fixed number of statements whatever the register's size (one update of the session, one lookup
for all participants, one statement that deletes, upserts and audits), so a full group costs the same round
trips as a pair.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, outbox
from .access import require_scope
from .errors import DomainError, ErrorCode, NotFound
from .models import (
    Attendance,
    AttendanceStatus,
    Enrolment,
    EnrolmentStatus,
    GroupSession,
    Participant,
    SessionStatus,
    utcnow,
)
from .principal import Principal

SCOPE = "attendance:write"
MAX_REGISTER = 500
MAX_DROPINS = 1000


@dataclass(frozen=True)
class RegisterEntry:
    participant_id: uuid.UUID
    status: AttendanceStatus


@dataclass(frozen=True)
class Register:
    session: GroupSession
    records: list[Attendance]


def _check(entries: Sequence[RegisterEntry], dropin_count: int) -> None:
    if not 0 <= dropin_count <= MAX_DROPINS:
        raise DomainError(ErrorCode.INVALID, f"must be 0 to {MAX_DROPINS}", "dropin_count")
    if len(entries) > MAX_REGISTER:
        raise DomainError(ErrorCode.INVALID, f"a register lists at most {MAX_REGISTER} participants", "entries")
    seen: set[uuid.UUID] = set()
    for index, entry in enumerate(entries):
        if entry.participant_id in seen:
            raise DomainError(ErrorCode.INVALID, "the participant is listed twice", f"entries.{index}.participant_id")
        seen.add(entry.participant_id)


async def _check_enrolled(
    session: AsyncSession, principal: Principal, meeting: GroupSession, entries: Sequence[RegisterEntry]
) -> None:
    """Every listed participant within reach (else NOT_FOUND) and enrolled in the group (else NOT_ENROLLED)."""
    ids = [entry.participant_id for entry in entries]
    statement = (
        access.in_reach(principal, Participant)
        .with_only_columns(Participant.id, Enrolment.status, Enrolment.left_at)
        .select_from(Participant)
        .outerjoin(
            Enrolment,
            sa.and_(Enrolment.participant_id == Participant.id, Enrolment.group_id == meeting.group_id),
        )
        .where(Participant.id.in_(ids))
    )
    found = {row.id: row for row in (await session.execute(statement)).all()}
    for index, entry in enumerate(entries):
        field = f"entries.{index}.participant_id"
        row = found.get(entry.participant_id)
        if row is None:
            raise NotFound("participant", field)
        enrolled = row.status is EnrolmentStatus.ACTIVE or (
            row.status is EnrolmentStatus.LEFT and row.left_at is not None and row.left_at >= meeting.starts_at
        )
        if not enrolled:
            raise DomainError(ErrorCode.NOT_ENROLLED, "the participant is not enrolled in the session's group", field)


async def record_attendance(
    session: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    version: int,
    entries: Sequence[RegisterEntry],
    dropin_count: int,
) -> Register:
    require_scope(principal, SCOPE)
    _check(entries, dropin_count)
    meeting = await _mark_held(session, principal, session_id, version, dropin_count)
    await _check_enrolled(session, principal, meeting, entries)
    counts = {status.value: sum(1 for e in entries if e.status is status) for status in AttendanceStatus}
    event = audit.event_values(
        principal, "session.record_attendance", "GroupSession", meeting.id, counts | {"dropins": dropin_count}
    )
    announced = outbox.event_values(principal, "register.recorded", meeting)
    records = await _replace_register(session, principal, meeting, entries, event, announced)
    order = {entry.participant_id: index for index, entry in enumerate(entries)}
    return Register(session=meeting, records=sorted(records, key=lambda row: order[row.participant_id]))


async def _mark_held(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, version: int, dropin_count: int
) -> GroupSession:
    """Compare-and-set the version, mark the session held with its drop-ins, in one ``UPDATE ... RETURNING``
    limited to the sessions the writer reaches (which also locks the row until the request ends).

    Only when it changes nothing is the session read again, to say why: not found, cancelled, not started yet,
    or stale.
    """
    statement = (
        sa.update(GroupSession)
        .where(
            GroupSession.id == session_id,
            access.reach_filter(principal, GroupSession),
            GroupSession.version == version,
            GroupSession.status != SessionStatus.CANCELLED,
            GroupSession.starts_at <= utcnow(),
        )
        .values(version=version + 1, status=SessionStatus.HELD, dropin_count=dropin_count)
        .returning(GroupSession)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    meeting: GroupSession | None = (await session.execute(statement)).scalar_one_or_none()
    if meeting is not None:
        return meeting
    current = await access.get_in_reach(session, principal, GroupSession, session_id, "session", "session_id")
    if current.status is SessionStatus.CANCELLED:
        raise DomainError(ErrorCode.INVALID_STATE, "a cancelled session has no register", "session_id")
    if current.starts_at > utcnow():
        raise DomainError(ErrorCode.NOT_STARTED, "the session has not started yet: record it once it has", "session_id")
    raise audit.conflict("session", current.version)


async def _replace_register(
    session: AsyncSession,
    principal: Principal,
    meeting: GroupSession,
    entries: Sequence[RegisterEntry],
    event: dict[str, Any],
    announced: dict[str, Any],
) -> list[Attendance]:
    """Delete rows of people no longer listed, insert or update the listed ones, and add the audit and outbox
    events.

    On PostgreSQL the four are one statement (the delete and the two event inserts as data-modifying CTEs of
    the upsert), so a register is one round trip whatever its size; SQLite, in process, runs them one by one.
    The upsert returns the rows as they now are.
    """
    table = cast(sa.Table, Attendance.__table__)
    listed = [entry.participant_id for entry in entries]
    gone = sa.delete(table).where(table.c.session_id == meeting.id, table.c.participant_id.not_in(listed))
    audited = audit.insert_event(event)
    outboxed = outbox.insert_event(announced)
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres or not entries:
        await session.execute(gone)
        await session.execute(audited)
        await session.execute(outboxed)
    if not entries:
        return []
    now = utcnow()
    values = [
        {
            "id": uuid.uuid4(),
            "organisation_id": principal.organisation_id,
            "session_id": meeting.id,
            "participant_id": entry.participant_id,
            "status": entry.status,
            "recorded_at": now,
        }
        for entry in entries
    ]
    insert = postgresql.insert(table) if postgres else sqlite.insert(table)
    upsert = insert.values(values)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.participant_id, table.c.organisation_id],
        set_={"status": upsert.excluded.status, "recorded_at": upsert.excluded.recorded_at},
    )
    if postgres:
        upsert = upsert.add_cte(gone.cte("gone")).add_cte(audited.cte("audited")).add_cte(outboxed.cte("outboxed"))
    returning = sa.select(Attendance).from_statement(upsert.returning(*table.c))
    rows = await session.scalars(returning, execution_options={"populate_existing": True})
    return list(rows)

"""Recording a session's register: every participant's attendance and the drop-in headcount, in one call.

The register sent is the whole truth for the session: recording it again replaces the earlier one (statuses
updated in place, people no longer listed removed), so a facilitator can correct a register by resending it.
Only participants enrolled in the session's group count: active now, or left after the session began.

The work is a fixed number of statements whatever the register's size, so a full group costs the same round
trips as a pair. On PostgreSQL there are two: the update of the session, and one statement that writes the rows
of the listed participants who are within reach and enrolled, deletes the others' and adds the audit and outbox
events; only when it wrote fewer rows than listed is the register looked at again, to say who is at fault. On
SQLite (in process) the lookup of the participants comes first and the writes follow one by one.
"""

from __future__ import annotations

import functools
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
    AuditEvent,
    Enrolment,
    EnrolmentStatus,
    GroupSession,
    OutboxEvent,
    Participant,
    SessionStatus,
    utcnow,
)
from .principal import Principal
from .statements import bound_insert, prefixed

SCOPE = "attendance:write"
MAX_REGISTER = 500
MAX_DROPINS = 1000
AUDIT, OUTBOX = "audit_", "outbox_"
"""Prefixes of the audit and outbox events' parameters in ``_register_statement``."""


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
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres:
        await _check_enrolled(session, principal, meeting, entries)
    counts = {status.value: sum(1 for e in entries if e.status is status) for status in AttendanceStatus}
    event = audit.event_values(
        principal, "session.record_attendance", "GroupSession", meeting.id, counts | {"dropins": dropin_count}
    )
    announced = outbox.event_values(principal, "register.recorded", meeting)
    if postgres:
        records = await _write_register(session, principal, meeting, entries, event, announced)
        if len(records) != len(entries):
            # Someone listed is out of reach or not enrolled: say who (the edge rolls the whole write back).
            await _check_enrolled(session, principal, meeting, entries)
            raise audit.conflict("session", None)
    else:
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


async def _write_register(
    session: AsyncSession,
    principal: Principal,
    meeting: GroupSession,
    entries: Sequence[RegisterEntry],
    event: dict[str, Any],
    announced: dict[str, Any],
) -> list[Attendance]:
    """PostgreSQL: the register in one statement (``_register_statement``), one round trip whatever its size.

    It writes only the entries of participants within reach and enrolled in the group, so fewer rows back than
    entries means someone listed cannot be recorded (the caller then finds out who, and the write is refused).
    """
    statement = _register_statement(_enrolled_in_reach(principal), tuple(event), tuple(announced))
    parameters = {
        "organisation_id": principal.organisation_id,
        "session_id": meeting.id,
        "group_id": meeting.group_id,
        "starts_at": meeting.starts_at,
        "recorded_at": utcnow(),
        "ids": [uuid.uuid4() for _ in entries],
        "participant_ids": [entry.participant_id for entry in entries],
        "statuses": [entry.status.value for entry in entries],
        **prefixed(event, AUDIT),
        **prefixed(announced, OUTBOX),
    }
    rows = await session.scalars(statement, parameters, execution_options={"populate_existing": True})
    return list(rows)


def _enrolled_in_reach(principal: Principal) -> sa.Select[Any]:
    """The ids of the participants ``principal`` reaches who are on the register of the session (parameters
    ``group_id`` and ``starts_at``): enrolled in its group now, or left after it began (as ``_check_enrolled``)."""
    enrolment = Enrolment.__table__.c
    return (
        access.in_reach(principal, Participant)
        .with_only_columns(Participant.id)
        .join(Enrolment, Enrolment.participant_id == Participant.id)
        .where(
            enrolment.group_id == sa.bindparam("group_id", type_=enrolment.group_id.type),
            sa.or_(
                enrolment.status == EnrolmentStatus.ACTIVE,
                sa.and_(
                    enrolment.status == EnrolmentStatus.LEFT,
                    enrolment.left_at >= sa.bindparam("starts_at", type_=enrolment.left_at.type),
                ),
            ),
        )
    )


def _register_statement(
    enrolled: sa.Select[Any], audit_columns: tuple[str, ...], outbox_columns: tuple[str, ...]
) -> sa.Executable:
    """PostgreSQL's register write as one statement: ``_register_upsert`` with ``enrolled`` (the ids it may
    write) as its CTE ``enrolled``, loaded as ORM rows."""
    upsert = _register_upsert(audit_columns, outbox_columns).add_cte(enrolled.cte(ENROLLED.name))
    return sa.select(Attendance).from_statement(upsert)


ENROLLED = sa.table("enrolled", sa.column("id", sa.Uuid()))
"""The CTE of the ids ``_register_upsert`` may write, added per caller (its shape follows the caller's reach)."""


@functools.cache
def _register_upsert(audit_columns: tuple[str, ...], outbox_columns: tuple[str, ...]) -> sa.Insert:
    """The register write, built once: the delete and the two event inserts are data-modifying CTEs of an
    upsert that reads the register from arrays (``unnest``), limited to the ids in the CTE ``ENROLLED``.

    The arrays keep its shape the same for every register size, so SQLAlchemy compiles it once per kind of
    caller and PostgreSQL prepares it once; a multi-row ``VALUES`` list would be compiled anew on every call.
    Parameters: ``organisation_id``, ``session_id``, ``recorded_at``, the arrays ``ids``, ``participant_ids``
    and ``statuses`` (one element per entry), and the events' columns prefixed with ``AUDIT`` and ``OUTBOX``.
    """
    table = cast(sa.Table, Attendance.__table__)
    listed = sa.bindparam("participant_ids", type_=postgresql.ARRAY(sa.Uuid()))
    session_id = sa.bindparam("session_id", type_=table.c.session_id.type)
    gone = sa.delete(table).where(table.c.session_id == session_id, table.c.participant_id != sa.all_(listed))
    register = (
        sa.func.unnest(
            sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid())),
            listed,
            sa.bindparam("statuses", type_=postgresql.ARRAY(sa.String())),
        )
        .table_valued(sa.column("id", sa.Uuid()), sa.column("participant_id", sa.Uuid()), sa.column("status"))
        .render_derived()
    )
    rows = sa.select(
        register.c.id,
        sa.bindparam("organisation_id", type_=table.c.organisation_id.type),
        session_id,
        register.c.participant_id,
        register.c.status,
        sa.bindparam("recorded_at", type_=table.c.recorded_at.type),
    ).where(register.c.participant_id.in_(sa.select(ENROLLED.c.id)))
    insert = postgresql.insert(table).from_select(
        ["id", "organisation_id", "session_id", "participant_id", "status", "recorded_at"], rows
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.participant_id, table.c.organisation_id],
        set_={"status": insert.excluded.status, "recorded_at": insert.excluded.recorded_at},
    )
    audited = bound_insert(cast(sa.Table, AuditEvent.__table__), audit_columns, AUDIT)
    outboxed = bound_insert(cast(sa.Table, OutboxEvent.__table__), outbox_columns, OUTBOX)
    upsert = upsert.add_cte(gone.cte("gone")).add_cte(audited.cte("audited")).add_cte(outboxed.cte("outboxed"))
    return upsert.returning(*table.c)


async def _replace_register(
    session: AsyncSession,
    principal: Principal,
    meeting: GroupSession,
    entries: Sequence[RegisterEntry],
    event: dict[str, Any],
    announced: dict[str, Any],
) -> list[Attendance]:
    """SQLite (in process, so round trips cost little): delete rows of people no longer listed, add the audit
    and outbox events, insert or update the listed rows and return them as they now are, one by one."""
    table = cast(sa.Table, Attendance.__table__)
    listed = [entry.participant_id for entry in entries]
    await session.execute(
        sa.delete(table).where(table.c.session_id == meeting.id, table.c.participant_id.not_in(listed))
    )
    await session.execute(audit.insert_event(event))
    await session.execute(outbox.insert_event(announced))
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
    upsert = sqlite.insert(table).values(values)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.participant_id, table.c.organisation_id],
        set_={"status": upsert.excluded.status, "recorded_at": upsert.excluded.recorded_at},
    )
    returning = sa.select(Attendance).from_statement(upsert.returning(*table.c))
    return list(await session.scalars(returning, execution_options={"populate_existing": True}))

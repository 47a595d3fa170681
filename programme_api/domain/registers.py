"""A session's register as a CSV file, for the coordinator's paper folder or the venue's sign-in sheet.

One row per participant on the register: everyone enrolled in the group when the session took place (active,
or left after it started) and anyone with a mark for it, by reference, with their preferred name and the mark
recorded (blank when none yet). It needs the same rights as reading those marks through GraphQL
(``participants:read`` and the session within reach), and it is an audited read of personal data: the edge
records it before any byte is sent.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access
from .access import require_scope
from .audit import AuditWriter, ReadLog, record_read, write_reads
from .models import Attendance, Enrolment, EnrolmentStatus, Group, GroupSession, Participant
from .principal import Principal

SCOPE = "participants:read"
HEADER = ("reference", "preferred_name", "enrolment_status", "attendance")


@dataclass(frozen=True)
class RegisterSheet:
    session: GroupSession
    group_name: str
    rows: list[tuple[uuid.UUID, str, str, str, str]]  # participant id, then the CSV columns


async def register_sheet(session: AsyncSession, principal: Principal, session_id: uuid.UUID) -> RegisterSheet:
    require_scope(principal, SCOPE)
    meeting = await access.get_readable(session, principal, GroupSession, session_id, "session")
    group = await access.get_readable(session, principal, Group, meeting.group_id, "group")
    marks = {
        mark.participant_id: mark.status.value
        for mark in (
            await session.execute(access.readable(principal, Attendance).where(Attendance.session_id == meeting.id))
        ).scalars()
    }
    on_register = sa.or_(
        Enrolment.status == EnrolmentStatus.ACTIVE,
        sa.and_(Enrolment.status == EnrolmentStatus.LEFT, Enrolment.left_at >= meeting.starts_at),
    )
    places = {
        place.participant_id: place.status.value
        for place in (
            await session.execute(
                access.readable(principal, Enrolment).where(Enrolment.group_id == group.id, on_register)
            )
        ).scalars()
    }
    wanted = set(places) | set(marks)
    people = (
        await session.execute(
            access.readable(principal, Participant)
            .where(Participant.id.in_(wanted))
            .order_by(Participant.reference, Participant.id)
        )
    ).scalars()
    rows = [
        (person.id, person.reference, person.preferred_name or "", places.get(person.id, ""), marks.get(person.id, ""))
        for person in people
    ]
    return RegisterSheet(session=meeting, group_name=group.name, rows=rows)


async def audit_register(writer: AuditWriter, principal: Principal, sheet: RegisterSheet) -> None:
    """Record the download (the session, the participants listed, the fields) before it is sent."""
    reads = ReadLog()
    record_read(reads, "GroupSession", (sheet.session.id,), action="register.exported", format="csv")
    record_read(reads, "Participant", [row[0] for row in sheet.rows], ("reference", "preferred_name"),
                action="register.exported")  # fmt: skip
    await write_reads(writer, reads, principal)


def register_csv(sheet: RegisterSheet) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for row in sheet.rows:
        writer.writerow([_safe(value) for value in row[1:]])
    return buffer.getvalue().encode("utf-8")


def _safe(value: str) -> str:
    """Cells a spreadsheet would run as a formula are prefixed with a quote (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value

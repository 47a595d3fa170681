"""Participants, enrolments and individual attendance: personal data, behind `participants:read`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from ...domain import models, programme
from ...domain.access import readable
from ..context import Info
from ..lists import load_by_id, load_children, load_node, load_rollup
from ..relay import Node, to_global_id
from .programme import Group, GroupSession

if TYPE_CHECKING:
    from .outcomes import Consent

SCOPE_NOTE = "Requires `participants:read`."


@strawberry.type(description=f"A pseudonymous member of the programme. {SCOPE_NOTE}")
class Participant(Node):
    model: strawberry.Private[models.Participant]
    reference: str = strawberry.field(description="The organisation's reference code for this person.")
    preferred_name: str | None
    contact_email: str | None
    contact_phone: str | None
    version: int

    @classmethod
    def from_model(cls, row: models.Participant) -> Participant:
        return cls(
            model=row,
            id=to_global_id("Participant", row.id),
            reference=row.reference,
            preferred_name=row.preferred_name,
            contact_email=row.contact_email,
            contact_phone=row.contact_phone,
            version=row.version,
        )

    @strawberry.field(description="The participant's places in groups you may read.")
    async def enrolments(self, info: Info) -> list[Enrolment]:
        rows = await load_children(
            info, "participant.enrolments", lambda p: readable(p, models.Enrolment),
            models.Enrolment.participant_id, self.model.id, (models.Enrolment.requested_at, models.Enrolment.id),
        )  # fmt: skip
        return [Enrolment.from_model(row) for row in rows]

    @strawberry.field(description="Consent history, every purpose, oldest first. Requires `participants:read`.")
    async def consents(self, info: Info) -> list[Annotated[Consent, strawberry.lazy(".outcomes")]]:
        from .outcomes import participant_consents

        return await participant_consents(info, self.model.id)

    @strawberry.field(description="Absences at held sessions since the participant was last present.")
    async def consecutive_absences(self, info: Info) -> int:
        number: int = await load_rollup(
            info, "participant.consecutive_absences", programme.consecutive_absences, self.model.id
        )
        return number


@strawberry.type(description=f"A participant's place in a group: waitlisted, active or left. {SCOPE_NOTE}")
class Enrolment(Node):
    model: strawberry.Private[models.Enrolment]
    status: models.EnrolmentStatus
    requested_at: datetime
    activated_at: datetime | None
    left_at: datetime | None
    version: int

    @classmethod
    def from_model(cls, row: models.Enrolment) -> Enrolment:
        return cls(
            model=row,
            id=to_global_id("Enrolment", row.id),
            status=row.status,
            requested_at=row.requested_at,
            activated_at=row.activated_at,
            left_at=row.left_at,
            version=row.version,
        )

    @strawberry.field
    async def group(self, info: Info) -> Group | None:
        return await load_node(info, models.Group, self.model.group_id, Group.from_model)

    @strawberry.field
    async def participant(self, info: Info) -> Participant | None:
        return await load_node(info, models.Participant, self.model.participant_id, Participant.from_model)

    @strawberry.field(description="This participant's attendance at the group's sessions, earliest first.")
    async def attendance(self, info: Info) -> list[AttendanceRecord]:
        rows = await load_children(
            info, "participant.attendance", lambda p: readable(p, models.Attendance),
            models.Attendance.participant_id, self.model.participant_id,
            (models.Attendance.recorded_at, models.Attendance.id),
        )  # fmt: skip
        sessions = await asyncio.gather(*(load_by_id(info, models.GroupSession, row.session_id) for row in rows))
        return [
            AttendanceRecord.from_model(row)
            for row, session in zip(rows, sessions, strict=True)
            if session is not None and session.group_id == self.model.group_id
        ]


@strawberry.type(description=f"Whether one participant came to one session. {SCOPE_NOTE}")
class AttendanceRecord(Node):
    model: strawberry.Private[models.Attendance]
    status: models.AttendanceStatus
    recorded_at: datetime

    @classmethod
    def from_model(cls, row: models.Attendance) -> AttendanceRecord:
        return cls(
            model=row, id=to_global_id("AttendanceRecord", row.id), status=row.status, recorded_at=row.recorded_at
        )

    @strawberry.field
    async def session(self, info: Info) -> GroupSession | None:
        return await load_node(info, models.GroupSession, self.model.session_id, GroupSession.from_model)

    @strawberry.field
    async def participant(self, info: Info) -> Participant | None:
        return await load_node(info, models.Participant, self.model.participant_id, Participant.from_model)

"""recordAttendance: a session's whole register in one call."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import attendance, models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.people import AttendanceRecord
from ..types.programme import GroupSession
from .common import MutationInput, MutationPayload, perform

SCOPE = attendance.SCOPE


@strawberry.input(description="One line of a register.")
class AttendanceEntryInput:
    participant_id: strawberry.ID = strawberry.field(description="Must be enrolled in the session's group.")
    status: models.AttendanceStatus


@strawberry.input(description="A session's whole register; recording it again replaces the earlier one.")
class RecordAttendanceInput(MutationInput):
    session_id: strawberry.ID
    version: int = strawberry.field(description="The session's version you read; a stale one is a `CONFLICT`.")
    entries: list[AttendanceEntryInput] = strawberry.field(
        description=f"Every participant recorded (at most {attendance.MAX_REGISTER}); anyone left out is removed."
    )
    dropin_count: int = strawberry.field(default=0, description="People who came without being enrolled.")


@strawberry.type(description="The session, now `HELD`, and its register, or why not.")
class RecordAttendancePayload(MutationPayload):
    session: GroupSession | None = None
    attendance: list[AttendanceRecord] = strawberry.field(
        default_factory=list, description="The register as recorded, in the order sent."
    )


def _present(result: attendance.Register) -> RecordAttendancePayload:
    return RecordAttendancePayload(
        session=GroupSession.from_model(result.session),
        attendance=[AttendanceRecord.from_model(row) for row in result.records],
    )


async def record_attendance(info: Info, input: RecordAttendanceInput) -> RecordAttendancePayload:
    async def work(session: AsyncSession, principal: Principal) -> attendance.Register:
        entries = [
            attendance.RegisterEntry(
                participant_id=expect_global_id(
                    entry.participant_id, "Participant", f"input.entries.{index}.participantId"
                ),
                status=entry.status,
            )
            for index, entry in enumerate(input.entries)
        ]
        session_id = expect_global_id(input.session_id, "GroupSession", "input.sessionId")
        return await attendance.record_attendance(
            session, principal, session_id, input.version, entries, input.dropin_count
        )

    return await perform(
        info,
        operation="recordAttendance",
        scope=SCOPE,
        input=input,
        result_type=attendance.Register,
        work=work,
        payload=RecordAttendancePayload,
        present=_present,
    )

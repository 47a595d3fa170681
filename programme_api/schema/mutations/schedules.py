"""setGroupSchedule and scheduleSessions."""

from __future__ import annotations

from datetime import date, time

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models, schedules
from ...domain.principal import Principal
from ...domain.recurrence import MAX_RANGE_DAYS, Schedule
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import Group, GroupSession
from .common import MutationInput, MutationPayload, perform
from .groups import GroupPayload, present_group

SCOPE = schedules.SCOPE
# The range check names the arguments of ``recurrence.occurrences``; the timezone is the organisation's.
RANGE_FIELDS: dict[str, str | None] = {"start": "input.from", "end": "input.to", "timezone": None}


@strawberry.input(description="A group's recurring schedule, in the organisation's local time (DST-correct).")
class SetGroupScheduleInput(MutationInput):
    group_id: strawberry.ID
    version: int = strawberry.field(description="The group's version you read; a stale one is a `CONFLICT`.")
    frequency: models.ScheduleFrequency
    weekday: int = strawberry.field(description="0 = Monday ... 6 = Sunday.")
    week_of_month: int | None = strawberry.field(
        default=None, description="Monthly only (required there): 1-4, or -1 for the last such weekday."
    )
    start_time: time = strawberry.field(description="Local wall-clock start, without an offset.")
    duration_minutes: int = strawberry.field(description="15 to 480.")
    anchor_date: date = strawberry.field(description="First date a meeting may fall on; fortnights count from it.")


@strawberry.input(description="Generate a group's sessions from its schedule for local dates `from`..`to`.")
class ScheduleSessionsInput(MutationInput):
    group_id: strawberry.ID
    starts_on: date = strawberry.field(name="from", description="First local date (inclusive).")
    ends_on: date = strawberry.field(
        name="to", description=f"Last local date (inclusive); at most {MAX_RANGE_DAYS} days after `from`."
    )


@strawberry.type(description="The sessions a schedule produced, or why not.")
class ScheduleSessionsPayload(MutationPayload):
    group: Group | None = None
    created_count: int = strawberry.field(default=0, description="Sessions new in this call (0 when all existed).")
    sessions: list[GroupSession] = strawberry.field(
        default_factory=list, description="All the group's sessions on dates in the range, new and existing."
    )


async def set_group_schedule(info: Info, input: SetGroupScheduleInput) -> GroupPayload:
    schedule = Schedule(
        frequency=input.frequency,
        weekday=input.weekday,
        start_time=input.start_time,
        duration_minutes=input.duration_minutes,
        anchor_date=input.anchor_date,
        week_of_month=input.week_of_month,
    )

    async def work(session: AsyncSession, principal: Principal) -> models.Group:
        group_id = expect_global_id(input.group_id, "Group", "input.groupId")
        return await schedules.set_group_schedule(session, principal, group_id, input.version, schedule)

    return await perform(
        info,
        operation="setGroupSchedule",
        scope=SCOPE,
        input=input,
        result_type=models.Group,
        work=work,
        payload=GroupPayload,
        present=present_group,
    )


def _present(result: schedules.ScheduledSessions) -> ScheduleSessionsPayload:
    return ScheduleSessionsPayload(
        group=Group.from_model(result.group),
        created_count=result.created_count,
        sessions=[GroupSession.from_model(row) for row in result.sessions],
    )


async def schedule_sessions(info: Info, input: ScheduleSessionsInput) -> ScheduleSessionsPayload:
    async def work(session: AsyncSession, principal: Principal) -> schedules.ScheduledSessions:
        group_id = expect_global_id(input.group_id, "Group", "input.groupId")
        return await schedules.schedule_sessions(session, principal, group_id, input.starts_on, input.ends_on)

    return await perform(
        info,
        operation="scheduleSessions",
        scope=SCOPE,
        input=input,
        result_type=schedules.ScheduledSessions,
        work=work,
        payload=ScheduleSessionsPayload,
        present=_present,
        aliases=RANGE_FIELDS,
    )

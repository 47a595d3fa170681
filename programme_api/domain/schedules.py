"""A group's recurring schedule, and generating its sessions for a date range.

The schedule is kept in local wall-clock time; ``recurrence`` turns it into UTC instants in the
organisation's timezone, so a 19:00 London group is 18:00 UTC in summer and 19:00 UTC in winter.

Generation never duplicates: a scheduled date that already has a session of the group (any status, made by
hand or by an earlier run) is skipped, so running it twice, or over overlapping ranges, creates nothing new.
Matching on the local date rather than the exact instant also keeps a session that was moved to another time
of the same day, or generated under an older start time, from getting a twin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import Group, GroupSession, GroupStatus, Organisation, SessionSource, SessionStatus
from .principal import Principal
from .recurrence import Schedule, load_timezone, occurrences

SCOPE = "programme:write"


@dataclass(frozen=True)
class ScheduledSessions:
    """The result of a generation run: how many sessions were new, and all of the group's in the range."""

    group: Group
    created_count: int
    sessions: list[GroupSession]


async def set_group_schedule(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, version: int, schedule: Schedule
) -> Group:
    require_scope(principal, SCOPE)
    schedule.validate()
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    await audit.bump_version(session, group, version, "group")
    group.schedule_frequency = schedule.frequency
    group.schedule_weekday = schedule.weekday
    group.schedule_week_of_month = schedule.week_of_month
    group.schedule_start_time = schedule.start_time
    group.schedule_duration_minutes = schedule.duration_minutes
    group.schedule_anchor_date = schedule.anchor_date
    await session.flush()
    details = {
        "frequency": schedule.frequency.value,
        "weekday": schedule.weekday,
        "week_of_month": schedule.week_of_month,
        "start_time": schedule.start_time.isoformat(),
        "duration_minutes": schedule.duration_minutes,
        "anchor_date": schedule.anchor_date.isoformat(),
    }
    await audit.record(session, principal, "group.schedule", group, details)
    return group


async def schedule_sessions(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, start: date, end: date
) -> ScheduledSessions:
    """Create the sessions the schedule has between ``start`` and ``end`` (local dates, inclusive)."""
    require_scope(principal, SCOPE)
    # Locked so two runs for one group cannot both insert the same session.
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    if group.status is not GroupStatus.ACTIVE:
        raise DomainError(ErrorCode.GROUP_NOT_ACTIVE, f"the group is {group.status.value}", "group_id")
    schedule = Schedule.from_group(group)
    if schedule is None:
        raise DomainError(ErrorCode.SCHEDULE_MISSING, "the group has no schedule: set one first", "group_id")
    organisation = await access.get_in_reach(
        session, principal, Organisation, principal.organisation_id, "organisation"
    )
    times = occurrences(schedule, organisation.timezone, start, end)
    zone = load_timezone(organisation.timezone)
    # A day either side covers every UTC offset, so no session of a local date in the range is missed.
    window_start = datetime.combine(start - timedelta(days=1), time(0), tzinfo=UTC)
    window_end = datetime.combine(end + timedelta(days=2), time(0), tzinfo=UTC)
    nearby = (
        await session.scalars(
            access.in_reach(principal, GroupSession).where(
                GroupSession.group_id == group.id,
                GroupSession.starts_at >= window_start,
                GroupSession.starts_at < window_end,
            )
        )
    ).all()
    existing = [row for row in nearby if start <= row.starts_at.astimezone(zone).date() <= end]
    taken = {row.starts_at.astimezone(zone).date() for row in existing}
    created = [
        GroupSession(
            id=uuid.uuid4(),
            organisation_id=principal.organisation_id,
            group_id=group.id,
            starts_at=starts_at,
            ends_at=ends_at,
            status=SessionStatus.SCHEDULED,
            source=SessionSource.SCHEDULE,
            dropin_count=0,
        )
        for starts_at, ends_at in times
        if starts_at.astimezone(zone).date() not in taken
    ]
    session.add_all(created)
    await session.flush()
    details = {"from": start.isoformat(), "to": end.isoformat(), "created": len(created)}
    await audit.record(session, principal, "group.schedule_sessions", group, details)
    every = sorted([*existing, *created], key=lambda row: (row.starts_at, row.id))
    return ScheduledSessions(group=group, created_count=len(created), sessions=every)

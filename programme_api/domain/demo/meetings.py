"""Sessions generated from each group's schedule, who facilitated them, and the registers taken at them."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import (
    Attendance,
    AttendanceStatus,
    DeliveryMode,
    GroupSession,
    SessionFacilitator,
    SessionSource,
    SessionStatus,
    Topic,
)
from ..recurrence import occurrences
from .catalogue import CANCELLATION_REASONS, ONLINE_CANCELLATION_REASONS, VENUE_CANCELLATION_REASONS
from .common import DEMO_TIMEZONE, IdSource, Period, Rows, rng_for
from .people import EnrolmentPlan, Habit, ParticipantPlan
from .structure import GroupPlan, OrganisationPlan

PAST_CANCELLATION_SHARE = 0.06
FUTURE_CANCELLATION_SHARE = 0.04
HABIT_ODDS = {
    Habit.REGULAR: (0.9, 0.7),
    Habit.OCCASIONAL: (0.65, 0.45),
    Habit.STREAKY: (0.88, 0.6),
    Habit.DRIFTING: (0.9, 0.6),
    Habit.FADING: (0.9, 0.3),
}
"""Chance of being present, and of an absence being excused (notice given), per attendance habit."""

ids = IdSource("meetings")


@dataclass(frozen=True)
class SessionPlan:
    id: uuid.UUID
    group: GroupPlan
    starts_at: datetime
    ends_at: datetime
    status: SessionStatus


def build_meetings(
    rows: Rows, plans: list[OrganisationPlan], people: list[ParticipantPlan], period: Period
) -> list[SessionPlan]:
    """Every group's sessions over the period, with facilitators and registers for those already held.

    Each group draws from its own random stream, so the registers of one group do not depend on how many
    meetings another group had in the period.
    """
    members: dict[uuid.UUID, list[EnrolmentPlan]] = defaultdict(list)
    for person in people:
        for enrolment in person.enrolments:
            members[enrolment.group.id].append(enrolment)
    sessions: list[SessionPlan] = []
    for plan in plans:
        for group in plan.groups:
            rng = rng_for("meetings", group.key)
            generated = schedule_sessions(rows, group, period, rng)
            held = [meeting for meeting in generated if meeting.status is SessionStatus.HELD]
            add_facilitators_present(rows, group, held, rng)
            for enrolment in members[group.id]:
                add_register(rows, enrolment, held, rng)
            sessions += generated
    return sessions


def schedule_sessions(rows: Rows, group: GroupPlan, period: Period, rng: random.Random) -> list[SessionPlan]:
    """The group's meetings from ``recurrence.occurrences``: past ones held, later ones scheduled, a few
    cancelled with a reason. Paused and closed groups stop at their last meeting day."""
    end = min(period.end, group.runs_until) if group.runs_until else period.end
    if end < period.start:
        return []
    sessions = []
    for starts_at, ends_at in occurrences(group.schedule, DEMO_TIMEZONE, period.start, end):
        past = period.is_past(starts_at)
        status = SessionStatus.HELD if past else SessionStatus.SCHEDULED
        reason = None
        if rng.random() < (PAST_CANCELLATION_SHARE if past else FUTURE_CANCELLATION_SHARE):
            status, reason = SessionStatus.CANCELLED, rng.choice(cancellation_reasons(group.mode))
        meeting = SessionPlan(ids(), group, starts_at, ends_at, status)
        rows.add(
            GroupSession,
            {
                "id": meeting.id,
                "organisation_id": group.organisation_id,
                "group_id": group.id,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "status": status,
                "cancellation_reason": reason,
                "source": SessionSource.SCHEDULE,
                "dropin_count": dropins(group, rng) if status is SessionStatus.HELD else 0,
            },
        )
        sessions.append(meeting)
    return sessions


def cancellation_reasons(mode: DeliveryMode) -> tuple[str, ...]:
    """Venue trouble only stops groups that meet somewhere; platform trouble only those meeting online."""
    if mode is DeliveryMode.ONLINE:
        return CANCELLATION_REASONS + ONLINE_CANCELLATION_REASONS
    return CANCELLATION_REASONS + VENUE_CANCELLATION_REASONS


def dropins(group: GroupPlan, rng: random.Random) -> int:
    """People who turn up without enrolling: common at cafés and bereavement circles, never online."""
    if group.mode is DeliveryMode.ONLINE:
        return 0
    if group.topic in (Topic.LONELINESS, Topic.BEREAVEMENT):
        return rng.randint(0, 4)
    return rng.choice((0, 0, 0, 1, 2))


def add_facilitators_present(rows: Rows, group: GroupPlan, held: list[SessionPlan], rng: random.Random) -> None:
    """The lead usually, the co-facilitator often, and never nobody: a session is not held without one."""
    for meeting in held:
        present = [fid for position, fid in enumerate(group.facilitator_ids) if rng.random() < (0.92, 0.85)[position]]
        for facilitator_id in present or [group.facilitator_ids[0]]:
            rows.add(
                SessionFacilitator,
                {
                    "id": ids(),
                    "organisation_id": group.organisation_id,
                    "session_id": meeting.id,
                    "facilitator_id": facilitator_id,
                },
            )


def add_register(rows: Rows, enrolment: EnrolmentPlan, held: list[SessionPlan], rng: random.Random) -> None:
    """One attendance mark per held session the participant was a member for, recorded after it ended."""
    expected = [meeting for meeting in held if enrolment.expected_at(meeting.starts_at)]
    for meeting, status in zip(expected, attendance_pattern(enrolment.habit, len(expected), rng), strict=True):
        rows.add(
            Attendance,
            {
                "id": ids(),
                "organisation_id": enrolment.group.organisation_id,
                "session_id": meeting.id,
                "participant_id": enrolment.participant_id,
                "status": status,
                "recorded_at": meeting.ends_at + timedelta(minutes=rng.randint(5, 120)),
            },
        )


def attendance_pattern(habit: Habit, count: int, rng: random.Random) -> list[AttendanceStatus]:
    """Marks for ``count`` consecutive meetings: mostly present, with the absence shapes that matter.

    Streaky attenders miss three in a row without notice once; drifting ones stop coming (an unexcused run
    up to the latest meeting, which consecutive-absence roll-ups should surface); fading ones come less and
    less before leaving.
    """
    present, excused = HABIT_ODDS[habit]
    marks = []
    for position in range(count):
        chance = present - 0.6 * position / max(1, count - 1) if habit is Habit.FADING else present
        if rng.random() < chance:
            marks.append(AttendanceStatus.PRESENT)
        else:
            marks.append(AttendanceStatus.EXCUSED if rng.random() < excused else AttendanceStatus.UNEXCUSED)
    if habit is Habit.STREAKY and count >= 6:
        start = rng.randint(1, count - 4)
        marks[start : start + 3] = [AttendanceStatus.UNEXCUSED] * 3
    if habit is Habit.DRIFTING and count >= 4:
        tail = rng.randint(2, min(4, count - 2))
        marks[-tail:] = [AttendanceStatus.UNEXCUSED] * tail
    return marks

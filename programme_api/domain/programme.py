"""Read queries over the programme (regions, groups, sessions, facilitators), always access-filtered.

Each function returns a statement built from ``access.readable`` plus the caller's filters; the API layer
pages it. Roll-ups (attendance rate, region totals, consecutive absences) are computed for many parents in
one statement each.
"""

from __future__ import annotations

import enum
import functools
import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access
from .access import fetch_rows, readable
from .errors import DomainError, ErrorCode
from .models import (
    Attendance,
    AttendanceStatus,
    DeliveryMode,
    Enrolment,
    EnrolmentStatus,
    Facilitator,
    Group,
    GroupSession,
    GroupStatus,
    Participant,
    Region,
    SessionStatus,
    Topic,
)
from .pagination import Ordering
from .principal import Principal

REGION_ORDER = Ordering((Region.name, Region.id))
GROUP_ORDER = Ordering((Group.name, Group.id))
PARTICIPANT_ORDER = Ordering((Participant.reference, Participant.id))
SESSION_ORDER = Ordering((GroupSession.starts_at, GroupSession.id))
FACILITATOR_ORDER = Ordering((Facilitator.display_name, Facilitator.id))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class GroupFilter:
    region_ids: tuple[uuid.UUID, ...] | None = None
    statuses: tuple[GroupStatus, ...] | None = None
    topics: tuple[Topic, ...] | None = None
    delivery_modes: tuple[DeliveryMode, ...] | None = None
    search: str | None = None


def groups(principal: Principal, where: GroupFilter | None = None) -> sa.Select[Group]:
    statement = readable(principal, Group)
    if where is None:
        return statement
    if where.region_ids is not None:
        statement = statement.where(Group.region_id.in_(where.region_ids))
    if where.statuses:
        statement = statement.where(Group.status.in_(where.statuses))
    if where.topics:
        statement = statement.where(Group.topic.in_(where.topics))
    if where.delivery_modes:
        statement = statement.where(Group.delivery_mode.in_(where.delivery_modes))
    if where.search:
        statement = statement.where(Group.name.ilike(f"%{escape_like(where.search)}%", escape="\\"))
    return statement


MAX_ABSENCES_FILTER = 1000


@dataclass(frozen=True)
class ParticipantFilter:
    """What a coordinator narrows participants by; all given conditions must hold."""

    search: str | None = None  # part of the reference or the preferred name, any case
    group_id: uuid.UUID | None = None  # enrolled there (in any status unless ``enrolment_status`` says)
    enrolment_status: EnrolmentStatus | None = None  # has an enrolment in this status (in the group, if given)
    consecutive_absences_at_least: int | None = None


def participants(principal: Principal, where: ParticipantFilter | None = None) -> sa.Select[Participant]:
    statement = readable(principal, Participant)
    if where is None:
        return statement
    if where.search:
        pattern = f"%{escape_like(where.search.strip())}%"
        statement = statement.where(
            sa.or_(Participant.reference.ilike(pattern, escape="\\"),
                   Participant.preferred_name.ilike(pattern, escape="\\"))
        )  # fmt: skip
    if where.group_id is not None or where.enrolment_status is not None:
        places = readable(principal, Enrolment).with_only_columns(Enrolment.participant_id)
        if where.group_id is not None:
            places = places.where(Enrolment.group_id == where.group_id)
        if where.enrolment_status is not None:
            places = places.where(Enrolment.status == where.enrolment_status)
        statement = statement.where(Participant.id.in_(places))
    if where.consecutive_absences_at_least is not None:
        if not 0 <= where.consecutive_absences_at_least <= MAX_ABSENCES_FILTER:
            raise DomainError(ErrorCode.INVALID, f"must be 0 to {MAX_ABSENCES_FILTER}",
                              "filter.consecutiveAbsencesAtLeast")  # fmt: skip
        if where.consecutive_absences_at_least > 0:
            statement = statement.where(_absences_since_present(principal) >= where.consecutive_absences_at_least)
    return statement


def _absences_since_present(principal: Principal) -> sa.ScalarSelect[Any]:
    """Per participant row of the outer query: absences at held sessions since they were last present, the same
    count as ``consecutive_absences`` (the field), as a correlated subquery over the readable marks."""
    marks = readable(principal, Attendance)
    last_seen = (
        marks.with_only_columns(sa.func.max(GroupSession.starts_at))
        .select_from(Attendance)
        .join(GroupSession, GroupSession.id == Attendance.session_id)
        .where(Attendance.participant_id == Participant.id, Attendance.status == AttendanceStatus.PRESENT)
        .correlate(Participant)
        .scalar_subquery()
    )
    return (
        marks.with_only_columns(sa.func.count())
        .select_from(Attendance)
        .join(GroupSession, GroupSession.id == Attendance.session_id)
        .where(
            Attendance.participant_id == Participant.id,
            Attendance.status != AttendanceStatus.PRESENT,
            GroupSession.status == SessionStatus.HELD,
            sa.or_(last_seen.is_(None), GroupSession.starts_at > last_seen),
        )
        .correlate(Participant)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class SessionFilter:
    starts_from: datetime | None = None
    starts_before: datetime | None = None
    statuses: tuple[SessionStatus, ...] | None = None
    group_ids: tuple[uuid.UUID, ...] | None = None


def sessions(principal: Principal, where: SessionFilter | None = None) -> sa.Select[GroupSession]:
    statement = readable(principal, GroupSession)
    if where is None:
        return statement
    if where.starts_from is not None:
        statement = statement.where(GroupSession.starts_at >= where.starts_from)
    if where.starts_before is not None:
        statement = statement.where(GroupSession.starts_at < where.starts_before)
    if where.statuses:
        statement = statement.where(GroupSession.status.in_(where.statuses))
    if where.group_ids is not None:
        statement = statement.where(GroupSession.group_id.in_(where.group_ids))
    return statement


class ComplianceState(enum.StrEnum):
    """Whether a facilitator may take new groups: training done and a background check in date."""

    COMPLIANT = "compliant"
    CHECK_EXPIRING = "check_expiring"
    CHECK_EXPIRED = "check_expired"
    TRAINING_MISSING = "training_missing"


DEFAULT_EXPIRY_WINDOW_DAYS = 30
MAX_EXPIRY_WINDOW_DAYS = 366


def today() -> date:
    return datetime.now(UTC).date()


def compliance_state(
    facilitator: Facilitator, on: date, window_days: int = DEFAULT_EXPIRY_WINDOW_DAYS
) -> ComplianceState:
    expires = facilitator.background_check_expires_on
    if expires is None or expires < on:
        return ComplianceState.CHECK_EXPIRED
    if facilitator.training_completed_on is None:
        return ComplianceState.TRAINING_MISSING
    if expires <= on + timedelta(days=window_days):
        return ComplianceState.CHECK_EXPIRING
    return ComplianceState.COMPLIANT


def facilitators(
    principal: Principal,
    compliance: ComplianceState | None = None,
    window_days: int = DEFAULT_EXPIRY_WINDOW_DAYS,
    on: date | None = None,
) -> sa.Select[Facilitator]:
    """Facilitators still active (not archived), optionally only those in one compliance state (same rules as
    ``compliance_state``)."""
    statement = readable(principal, Facilitator).where(Facilitator.archived_at.is_(None))
    on = on or today()
    expires = Facilitator.background_check_expires_on
    expired = sa.or_(expires.is_(None), expires < on)
    untrained = Facilitator.training_completed_on.is_(None)
    expiring = expires <= on + timedelta(days=window_days)
    conditions = {
        ComplianceState.CHECK_EXPIRED: expired,
        ComplianceState.TRAINING_MISSING: sa.and_(sa.not_(expired), untrained),
        ComplianceState.CHECK_EXPIRING: sa.and_(sa.not_(expired), sa.not_(untrained), expiring),
        ComplianceState.COMPLIANT: sa.and_(sa.not_(expired), sa.not_(untrained), sa.not_(expiring)),
    }
    return statement if compliance is None else statement.where(conditions[compliance])


@dataclass(frozen=True)
class AttendanceCounts:
    present: int = 0
    excused: int = 0
    unexcused: int = 0


def attendance_tallies(session_columns: Any) -> sa.Select[Any]:
    """One row of attendance counts (``attendance_present`` ...) of the session whose columns are given.

    A correlated aggregate over that session's marks of the same organisation, found through the attendance
    index: never a scan of all marks. The session row itself came through the access filter, which is all
    counts need (``programme:read``), so the marks are not filtered again.

    Trusted filter: equivalent to ``access.attendance_for_counts`` for that one session, provided the
    session row it is correlated to is read through the access module (every caller adds it to a page of
    ``readable`` sessions).
    """
    counts: list[Any] = [
        sa.func.count().filter(Attendance.status == status).label(f"attendance_{status.value}")
        for status in AttendanceStatus
    ]
    tallies: sa.Select[Any] = sa.select(*counts).where(
        Attendance.session_id == session_columns.id,
        Attendance.organisation_id == session_columns.organisation_id,
    )
    return access.trusted(tallies, reason="counts of one session row that was itself read through the rules")


def with_attendance_counts(query: sa.Select[Any], session_columns: Any, dialect: str) -> sa.Select[Any]:
    """``query`` over readable sessions, with each row's attendance counts (one column per status).

    ``session_columns`` are the session row's columns in ``query``. On PostgreSQL the tallies are one
    ``LATERAL`` aggregate per row; SQLite has no ``LATERAL``, so there each count is a correlated subquery.
    A page of sessions with its counts is then one statement: no second round trip, no long id list.
    """
    tallies = attendance_tallies(session_columns)
    if dialect == "postgresql":
        joined = tallies.lateral("tallies")
        return query.add_columns(*joined.c).join(joined, sa.true())
    return query.add_columns(
        *(
            tallies.with_only_columns(sa.func.count()).where(Attendance.status == status).scalar_subquery()
            .label(f"attendance_{status.value}")
            for status in AttendanceStatus
        )
    )  # fmt: skip


async def attendance_counts(
    session: AsyncSession, principal: Principal, session_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AttendanceCounts]:
    query = (
        access.attendance_for_counts(principal)
        .with_only_columns(Attendance.session_id, Attendance.status, sa.func.count())
        .where(Attendance.session_id.in_(session_ids))
        .group_by(Attendance.session_id, Attendance.status)
    )
    tallies: dict[uuid.UUID, dict[str, int]] = {sid: {} for sid in session_ids}
    for session_id, status, number in await fetch_rows(session, query):
        tallies[session_id][AttendanceStatus(status).value] = int(number)
    return {sid: AttendanceCounts(**tally) for sid, tally in tallies.items()}


@dataclass(frozen=True)
class Period:
    """A half-open interval of instants [starts, ends) used by roll-ups."""

    starts: datetime
    ends: datetime


DEFAULT_PERIOD = timedelta(days=365)


def period_of(starts: datetime | None, ends: datetime | None) -> Period:
    """The roll-ups' period from a caller's ``from``/``to``: by default the 12 months up to now."""
    end = ends or datetime.now(UTC)
    return Period(starts=starts or end - DEFAULT_PERIOD, ends=end)


def attendance_rate(present: int, recorded: int) -> float | None:
    """``present / recorded`` rounded to 4 decimals (Python's ``round`` of the float: the exact binary value,
    halves to even), None when nothing was recorded."""
    return round(present / recorded, 4) if recorded else None


def held_session_tallies(principal: Principal, period: Period, dialect: str) -> sa.Select[Any]:
    """The readable held sessions in ``period`` (``id``, ``group_id``), each with its marks counted by status
    (``attendance_present`` ...).

    Starts from sessions (the session index on organisation, group and start, once the caller narrows it to
    groups); each session's marks are counted by an aggregate correlated to that one session
    (``with_attendance_counts``), so they are read through the attendance index session by session whatever
    plan the database picks. As a join of sessions and marks, PostgreSQL's planner prices the row-level
    security check of the marks once per index probe and, knowing the period's dates, hashes the
    organisation's every mark instead: the work must grow with the asked groups' sessions, not with the
    organisation's history, and an aggregate per session leaves it no other way.
    """
    sessions: Any = (  # a select of three columns: ``with_attendance_counts`` adds the counts
        readable(principal, GroupSession)
        .with_only_columns(GroupSession.id, GroupSession.organisation_id, GroupSession.group_id)
        .where(
            GroupSession.starts_at >= period.starts,
            GroupSession.starts_at < period.ends,
            GroupSession.status == SessionStatus.HELD,
        )
    )
    return with_attendance_counts(sessions, GroupSession, dialect)


def attendance_rate_sums(tallies: Any) -> tuple[Any, Any]:
    """Present places and recorded places (marks of any status), summed over rows of ``held_session_tallies``
    (a subquery's columns) as integers: null over no rows."""
    counts = [tallies.c[f"attendance_{status.value}"] for status in AttendanceStatus]
    recorded = functools.reduce(operator.add, counts)
    present = tallies.c[f"attendance_{AttendanceStatus.PRESENT.value}"]
    return sa.cast(sa.func.sum(present), sa.BigInteger), sa.cast(sa.func.sum(recorded), sa.BigInteger)


async def attendance_rates(
    session: AsyncSession, principal: Principal, group_ids: Sequence[uuid.UUID], period: Period
) -> dict[uuid.UUID, float | None]:
    """Share of recorded places that were present, at held sessions in the period (None: nothing recorded)."""
    dialect = session.get_bind().dialect.name
    tallies = held_session_tallies(principal, period, dialect).where(GroupSession.group_id.in_(group_ids)).subquery()
    present, recorded = attendance_rate_sums(tallies)
    query = sa.select(tallies.c.group_id, present, recorded).group_by(tallies.c.group_id)
    rates: dict[uuid.UUID, float | None] = dict.fromkeys(group_ids)
    for group_id, present_count, recorded_count in await fetch_rows(session, query):
        rates[group_id] = attendance_rate(int(present_count or 0), int(recorded_count or 0))
    return rates


@dataclass(frozen=True)
class RegionTotals:
    active_groups: int = 0
    sessions_held: int = 0
    unique_attendees: int = 0


async def region_totals(
    session: AsyncSession, principal: Principal, region_ids: Sequence[uuid.UUID], period: Period
) -> dict[uuid.UUID, RegionTotals]:
    """Active groups now, and sessions held and distinct attendees in the period, per region.

    Trusted filter: every count is over ``readable`` groups (``visible_groups``); the sessions and marks
    joined to them are those of the readable groups, which is what the session rule and the counting rule
    (``access.attendance_for_counts``) allow; only counts leave here.
    """
    visible_groups = groups(principal).where(Group.region_id.in_(region_ids)).subquery()
    active = sa.select(visible_groups.c.region_id, sa.func.count()).where(
        visible_groups.c.status == GroupStatus.ACTIVE.value
    )
    held_in_period = sa.and_(
        GroupSession.status == SessionStatus.HELD,
        GroupSession.starts_at >= period.starts,
        GroupSession.starts_at < period.ends,
    )
    # Sessions of the visible groups only, then their marks: both through indexes led by the organisation.
    of_group = sa.and_(
        GroupSession.organisation_id == visible_groups.c.organisation_id, GroupSession.group_id == visible_groups.c.id
    )
    of_session = sa.and_(
        Attendance.organisation_id == GroupSession.organisation_id, Attendance.session_id == GroupSession.id
    )
    held = (
        sa.select(visible_groups.c.region_id, sa.func.count(GroupSession.id))
        .join(GroupSession, of_group)
        .where(held_in_period)
    )
    attendees = (
        sa.select(visible_groups.c.region_id, sa.func.count(sa.distinct(Attendance.participant_id)))
        .join(GroupSession, of_group)
        .join(Attendance, of_session)
        .where(held_in_period, Attendance.status == AttendanceStatus.PRESENT)
    )
    totals: dict[uuid.UUID, dict[str, int]] = {rid: {} for rid in region_ids}
    for name, query in (("active_groups", active), ("sessions_held", held), ("unique_attendees", attendees)):
        grouped = query.group_by(visible_groups.c.region_id)
        trusted = access.trusted(grouped, reason="counts over sessions and marks of readable groups")
        for region_id, number in await fetch_rows(session, trusted):
            totals[region_id][name] = int(number)
    return {rid: RegionTotals(**values) for rid, values in totals.items()}


def region_total_statements(principal: Principal, period: Period) -> dict[str, tuple[sa.Select[Any], Any]]:
    """``region_totals`` of one region, each total a one-value statement with the column to equate to the
    region's id (``statement.where(column == region_id)``). Built from the access module's statements alone
    (readable groups and sessions, countable marks), so that it can be part of a larger checked statement."""
    group = sa.orm.aliased(Group)  # beside, not instead of, the groups table of the access filters' subqueries
    of_group = sa.and_(group.id == GroupSession.group_id, group.organisation_id == GroupSession.organisation_id)
    held_in_period = sa.and_(
        GroupSession.status == SessionStatus.HELD,
        GroupSession.starts_at >= period.starts,
        GroupSession.starts_at < period.ends,
    )
    active = groups(principal).with_only_columns(sa.func.count()).where(Group.status == GroupStatus.ACTIVE)
    held = (
        readable(principal, GroupSession)
        .with_only_columns(sa.func.count(GroupSession.id))
        .select_from(GroupSession)
        .join(group, of_group)
        .where(held_in_period)
    )
    # From the region's groups to their sessions to those sessions' marks. Counted distinct over an expression,
    # not the bare column: SQLite would otherwise walk the organisation's marks in participant order through
    # the participant index (to count distinct values without sorting), reading its whole history.
    distinct_people = sa.distinct(sa.func.coalesce(Attendance.participant_id, Attendance.participant_id))
    attendees = (
        access.attendance_for_counts(principal)
        .with_only_columns(sa.func.count(distinct_people))
        .select_from(group)
        .join(GroupSession, of_group)
        .join(
            Attendance,
            sa.and_(
                Attendance.organisation_id == GroupSession.organisation_id, Attendance.session_id == GroupSession.id
            ),
        )
        .where(held_in_period, Attendance.status == AttendanceStatus.PRESENT)
    )
    return {
        "active_groups": (active, Group.region_id),
        "sessions_held": (held, group.region_id),
        "unique_attendees": (attendees, group.region_id),
    }


async def consecutive_absences(
    session: AsyncSession, principal: Principal, participant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Absences (excused or not) at held sessions since each participant was last present."""
    marks = readable(principal, Attendance)
    last_present = (
        marks.with_only_columns(Attendance.participant_id, sa.func.max(GroupSession.starts_at).label("seen"))
        .select_from(Attendance)
        .join(GroupSession, GroupSession.id == Attendance.session_id)
        .where(
            Attendance.participant_id.in_(participant_ids),
            Attendance.status == AttendanceStatus.PRESENT,
        )
        .group_by(Attendance.participant_id)
        .subquery()
    )
    query = (
        marks.with_only_columns(Attendance.participant_id, sa.func.count())
        .select_from(Attendance)
        .join(GroupSession, GroupSession.id == Attendance.session_id)
        .outerjoin(last_present, last_present.c.participant_id == Attendance.participant_id)
        .where(
            Attendance.participant_id.in_(participant_ids),
            Attendance.status != AttendanceStatus.PRESENT,
            GroupSession.status == SessionStatus.HELD,
            sa.or_(last_present.c.seen.is_(None), GroupSession.starts_at > last_present.c.seen),
        )
        .group_by(Attendance.participant_id)
    )
    counts = dict.fromkeys(participant_ids, 0)
    for participant_id, number in await fetch_rows(session, query):
        counts[participant_id] = int(number)
    return counts


def rows_by(rows: Sequence[Any], attribute: str) -> dict[Any, list[Any]]:
    """Group loaded rows by an attribute (a DataLoader answers per key)."""
    grouped: dict[Any, list[Any]] = {}
    for row in rows:
        grouped.setdefault(getattr(row, attribute), []).append(row)
    return grouped

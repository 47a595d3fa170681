"""Turn a group's recurring schedule into concrete session times, correct across daylight-saving changes.

A schedule is a wall-clock promise ("Tuesdays at 19:00 in Europe/London"), so the pattern is worked out on
local calendar dates and only then turned into UTC instants: a 19:00 London group is 18:00 UTC in summer and
19:00 UTC in winter. Two local times need a rule because the clock does not show them exactly once:

* a time inside a spring-forward gap (01:30 on the night London jumps 01:00 -> 02:00) never happens; the
  meeting moves forward to the first instant that does exist, the end of the gap (02:00 local);
* a time inside an autumn fold (01:30 on the night London goes 02:00 -> 01:00) happens twice; the meeting
  takes the first of the two (``fold=0``), so it is never later than the promised wall-clock time.

Durations are elapsed time: ``ends_at - starts_at`` is always ``duration_minutes``, even when a meeting
straddles a clock change.

Everything here is pure (no database, no clock): the API layer turns :class:`ScheduleError` into a user error
whose ``field`` is a :class:`Schedule` attribute name (the group's column name without ``schedule_``), or
``timezone`` / ``start`` / ``end`` for the arguments of :func:`occurrences`.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DomainError, ErrorCode
from .models.enums import ScheduleFrequency

if TYPE_CHECKING:
    from .models.group import Group

MAX_RANGE_DAYS: Final = 366
"""Longest date range (inclusive, in days) one call may expand: a leap year, so a year ahead always fits."""

MIN_DURATION_MINUTES: Final = 15
MAX_DURATION_MINUTES: Final = 480
WEEKS_OF_MONTH: Final = frozenset({1, 2, 3, 4, -1})
"""Which weekday of the month a monthly group meets on; -1 is the last. A 5th would skip most months."""

_HOST_ONLY_ZONE_KEYS: Final = frozenset({"localtime", "posixrules"})
"""Files in the host's zoneinfo directory that are not IANA zones: accepting them would tie sessions to the
server's configuration instead of the organisation's location."""

_T = TypeVar("_T")
_WEEK: Final = 7
_FORTNIGHT: Final = 14


class ScheduleError(DomainError):
    """A schedule, timezone or date range that cannot be expanded; ``field`` says which input to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(ErrorCode.INVALID, message, field)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A group's recurring meeting pattern, in the organisation's local wall-clock time.

    ``anchor_date`` is the first date a meeting may fall on; fortnightly groups also count whole fortnights
    from the Monday of the anchor's week, so the anchor fixes which weeks are "on". ``week_of_month`` is only
    for monthly groups: 1-4 for the nth ``weekday`` of the month, -1 for the last.
    """

    frequency: ScheduleFrequency
    weekday: int
    start_time: time
    duration_minutes: int
    anchor_date: date
    week_of_month: int | None = None

    @classmethod
    def from_group(cls, group: Group) -> Schedule | None:
        """The group's schedule, validated; None when the group has no schedule at all.

        A half-set schedule (possible on an unsaved object, never in the database) is an error rather than
        None, so a mistake in an edit is reported instead of silently producing no sessions.
        """
        columns = (
            group.schedule_frequency,
            group.schedule_weekday,
            group.schedule_start_time,
            group.schedule_duration_minutes,
            group.schedule_anchor_date,
            group.schedule_week_of_month,
        )
        if all(value is None for value in columns):
            return None
        schedule = cls(
            frequency=_required("frequency", group.schedule_frequency),
            weekday=_required("weekday", group.schedule_weekday),
            start_time=_required("start_time", group.schedule_start_time),
            duration_minutes=_required("duration_minutes", group.schedule_duration_minutes),
            anchor_date=_required("anchor_date", group.schedule_anchor_date),
            week_of_month=group.schedule_week_of_month,
        )
        schedule.validate()
        return schedule

    def validate(self) -> None:
        """Raise :class:`ScheduleError` for the first inconsistent value.

        Values arrive from API input as well as the database, so types are checked too: a ``bool`` weekday or
        a ``datetime`` anchor would otherwise compare or step wrongly far from where it came in.
        """
        if not isinstance(self.frequency, ScheduleFrequency):
            raise ScheduleError("frequency", f"must be one of {', '.join(f.value for f in ScheduleFrequency)}")
        if not _is_int(self.weekday) or not 0 <= self.weekday <= 6:
            raise ScheduleError("weekday", "must be 0 (Monday) to 6 (Sunday)")
        self._validate_week_of_month()
        if not isinstance(self.start_time, time) or self.start_time.tzinfo is not None:
            raise ScheduleError("start_time", "must be a local wall-clock time without a timezone")
        if not _is_int(self.duration_minutes) or not (
            MIN_DURATION_MINUTES <= self.duration_minutes <= MAX_DURATION_MINUTES
        ):
            raise ScheduleError("duration_minutes", f"must be {MIN_DURATION_MINUTES} to {MAX_DURATION_MINUTES} minutes")
        if not isinstance(self.anchor_date, date) or isinstance(self.anchor_date, datetime):
            raise ScheduleError("anchor_date", "must be a calendar date")

    def _validate_week_of_month(self) -> None:
        """Monthly groups need to know which week; others must not carry one that would be silently ignored."""
        if self.frequency is ScheduleFrequency.MONTHLY:
            if self.week_of_month is None:
                raise ScheduleError("week_of_month", "is required for a monthly schedule")
            if not _is_int(self.week_of_month) or self.week_of_month not in WEEKS_OF_MONTH:
                raise ScheduleError("week_of_month", "must be 1 to 4, or -1 for the last week of the month")
        elif self.week_of_month is not None:
            raise ScheduleError("week_of_month", f"only applies to monthly schedules, not {self.frequency.value}")


def occurrences(schedule: Schedule, timezone: str, start: date, end: date) -> list[tuple[datetime, datetime]]:
    """Every meeting whose local date is in ``[start, end]`` (inclusive) and not before the anchor date.

    Returns ``(starts_at, ends_at)`` pairs as aware UTC datetimes, sorted and without duplicates. The local
    date is the scheduled one: a meeting pushed past midnight by a spring-forward gap still belongs to the
    day it was scheduled for.
    """
    schedule.validate()
    zone = load_timezone(timezone)
    check_range(start, end)
    duration = timedelta(minutes=schedule.duration_minutes)
    try:
        starts = [to_utc(day, schedule.start_time, zone) for day in meeting_dates(schedule, start, end)]
        return [(starts_at, starts_at + duration) for starts_at in starts]
    except OverflowError as exc:
        field = "start" if start.year == date.min.year else "end"
        raise ScheduleError(field, "dates must stay within the years 1 to 9999 in UTC") from exc


def check_range(start: date, end: date, *, max_range_days: int = MAX_RANGE_DAYS) -> None:
    """Refuse inverted ranges and ranges longer than ``max_range_days``, counting both ends.

    Callers generate sessions for whatever range a user asks for, so the bound keeps one request from
    creating thousands of rows.
    """
    if end < start:
        raise ScheduleError("end", "must be on or after the start date")
    if (end - start).days + 1 > max_range_days:
        raise ScheduleError("end", f"the date range may cover at most {max_range_days} days")


def load_timezone(key: str) -> ZoneInfo:
    """The IANA zone named ``key``, or :class:`ScheduleError` for anything zoneinfo cannot load as one."""
    if not isinstance(key, str) or key in _HOST_ONLY_ZONE_KEYS:
        raise ScheduleError("timezone", f"unknown timezone {key!r}")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleError("timezone", f"unknown timezone {key!r}") from exc


def meeting_dates(schedule: Schedule, start: date, end: date) -> Iterator[date]:
    """The local calendar dates the schedule meets on within ``[start, end]``, from the anchor date onward.

    Expects a validated schedule; :func:`occurrences` validates before calling it.
    """
    first = max(start, schedule.anchor_date)
    if first > end:
        return iter(())
    if schedule.frequency is ScheduleFrequency.MONTHLY:
        assert schedule.week_of_month is not None
        return _monthly_dates(schedule.weekday, schedule.week_of_month, first, end)
    day = _next_weekday(first, schedule.weekday)
    if schedule.frequency is ScheduleFrequency.WEEKLY:
        return _stepped_dates(day, end, _WEEK)
    if _weeks_between(_monday_of(schedule.anchor_date), day) % 2:
        day += timedelta(days=_WEEK)
    return _stepped_dates(day, end, _FORTNIGHT)


def to_utc(day: date, wall_time: time, zone: tzinfo) -> datetime:
    """The UTC instant of ``wall_time`` on local ``day``: first of two in a fold, end of the gap in a gap."""
    local = datetime.combine(day, wall_time.replace(fold=0), tzinfo=zone)
    instant = local.astimezone(UTC)
    if _is_wall_time(instant, local):
        return instant
    return _gap_end(local, zone)


def _gap_end(local: datetime, zone: tzinfo) -> datetime:
    """The first instant that exists after a nonexistent local time: the moment the clocks jumped.

    zoneinfo gives no public list of transitions, but PEP 495 pins both readings of a gap time: ``fold=1``
    applies the offset after the jump and lands before the transition, ``fold=0`` applies the offset before
    and lands after it. The transition is the first whole second between them whose local reading is no
    longer earlier than the wanted time; tz data records transitions to the second.
    """
    wanted = local.replace(tzinfo=None)
    low = math.floor(local.replace(fold=1).timestamp())
    high = math.ceil(local.replace(fold=0).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) < wanted:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _is_wall_time(instant: datetime, local: datetime) -> bool:
    """Whether ``instant`` reads as ``local``'s wall-clock time in ``local``'s zone (false only in a gap)."""
    return instant.astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


def _monthly_dates(weekday: int, week_of_month: int, first: date, end: date) -> Iterator[date]:
    """The nth (or last) ``weekday`` of each month from ``first``'s month to ``end``'s, clipped to the range."""
    year, month = first.year, first.month
    while (year, month) <= (end.year, end.month):
        day = _nth_weekday(year, month, weekday, week_of_month)
        if first <= day <= end:
            yield day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _nth_weekday(year: int, month: int, weekday: int, week_of_month: int) -> date:
    """The ``week_of_month``-th ``weekday`` of the month (1-4 always exist); -1 counts back from the end."""
    if week_of_month == -1:
        last = date(year, month, calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - weekday) % _WEEK)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % _WEEK + _WEEK * (week_of_month - 1))


def _stepped_dates(first: date, end: date, step_days: int) -> Iterator[date]:
    """``first`` and every ``step_days`` after it up to ``end``; stops before stepping past ``date.max``."""
    day = first
    while day <= end:
        yield day
        if (end - day).days < step_days:
            return
        day += timedelta(days=step_days)


def _next_weekday(day: date, weekday: int) -> date:
    """The first date on or after ``day`` that falls on ``weekday``."""
    return day + timedelta(days=(weekday - day.weekday()) % _WEEK)


def _monday_of(day: date) -> date:
    """The Monday starting ``day``'s week, so fortnights count whole weeks whatever weekday the anchor is."""
    return day - timedelta(days=day.weekday())


def _weeks_between(monday: date, day: date) -> int:
    """Whole weeks from ``monday`` to ``day``'s week."""
    return (_monday_of(day) - monday).days // _WEEK


def _required(field: str, value: _T | None) -> _T:
    """``value`` itself, or the error naming the schedule column an unsaved group left empty."""
    if value is None:
        raise ScheduleError(field, "is required when the group has a schedule")
    return value


def _is_int(value: object) -> bool:
    """A real integer: ``bool`` is an ``int`` subclass, but ``True`` is not a weekday."""
    return isinstance(value, int) and not isinstance(value, bool)

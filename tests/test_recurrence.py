"""Recurring schedules expanded into session times: exact DST cases first, then properties over any zone.

Pure tests: no database. Expected instants are written out in UTC so a wrong offset cannot hide behind the
same zoneinfo arithmetic the code under test uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from programme_api.domain.errors import DomainError, ErrorCode
from programme_api.domain.models.enums import ScheduleFrequency
from programme_api.domain.models.group import Group
from programme_api.domain.recurrence import (
    MAX_RANGE_DAYS,
    Schedule,
    ScheduleError,
    check_range,
    load_timezone,
    meeting_dates,
    occurrences,
)

WEEKLY = ScheduleFrequency.WEEKLY
FORTNIGHTLY = ScheduleFrequency.FORTNIGHTLY
MONTHLY = ScheduleFrequency.MONTHLY
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def starts(schedule: Schedule, zone: str, start: date, end: date) -> list[datetime]:
    return [starts_at for starts_at, _ in occurrences(schedule, zone, start, end)]


def weekly(weekday: int, at: time, anchor: date = date(2027, 1, 1), minutes: int = 90) -> Schedule:
    return Schedule(WEEKLY, weekday, at, minutes, anchor)


# --- weekly across daylight-saving changes -------------------------------------------------------------------


def test_weekly_london_keeps_wall_clock_across_spring_change() -> None:
    # BST starts Sunday 28 March 2027: 19:00 London is 19:00 UTC before, 18:00 UTC after.
    result = occurrences(weekly(TUE, time(19)), LONDON, date(2027, 3, 16), date(2027, 4, 6))
    assert result == [
        (utc(2027, 3, 16, 19), utc(2027, 3, 16, 20, 30)),
        (utc(2027, 3, 23, 19), utc(2027, 3, 23, 20, 30)),
        (utc(2027, 3, 30, 18), utc(2027, 3, 30, 19, 30)),
        (utc(2027, 4, 6, 18), utc(2027, 4, 6, 19, 30)),
    ]


def test_weekly_london_keeps_wall_clock_across_autumn_change() -> None:
    # BST ends Sunday 31 October 2027.
    result = starts(weekly(TUE, time(19)), LONDON, date(2027, 10, 19), date(2027, 11, 9))
    assert result == [utc(2027, 10, 19, 18), utc(2027, 10, 26, 18), utc(2027, 11, 2, 19), utc(2027, 11, 9, 19)]


def test_weekly_on_the_change_day_itself_uses_the_new_offset() -> None:
    spring = starts(weekly(SUN, time(19)), LONDON, date(2027, 3, 21), date(2027, 3, 28))
    autumn = starts(weekly(SUN, time(19)), LONDON, date(2027, 10, 24), date(2027, 10, 31))
    assert spring == [utc(2027, 3, 21, 19), utc(2027, 3, 28, 18)]
    assert autumn == [utc(2027, 10, 24, 18), utc(2027, 10, 31, 19)]


def test_weekly_new_york_across_both_changes() -> None:
    # EDT runs from Sunday 14 March to Sunday 7 November 2027: 18:00 is 23:00 UTC in winter, 22:00 in summer.
    group = weekly(WED, time(18))
    assert starts(group, NEW_YORK, date(2027, 3, 3), date(2027, 3, 17)) == [
        utc(2027, 3, 3, 23),
        utc(2027, 3, 10, 23),
        utc(2027, 3, 17, 22),
    ]
    assert starts(group, NEW_YORK, date(2027, 11, 3), date(2027, 11, 10)) == [
        utc(2027, 11, 3, 22),
        utc(2027, 11, 10, 23),
    ]


def test_range_is_by_local_date_not_utc_date() -> None:
    # 20:00 on Wednesday in New York is 01:00 on Thursday in UTC; a Wednesday-only range still includes it.
    assert starts(weekly(WED, time(20)), NEW_YORK, date(2027, 3, 10), date(2027, 3, 10)) == [utc(2027, 3, 11, 1)]


def test_ends_at_is_elapsed_duration_even_across_the_change() -> None:
    # 00:30-03:30 local on the spring-forward night: three real hours, though the wall clock shows four.
    ((starts_at, ends_at),) = occurrences(
        weekly(SUN, time(0, 30), minutes=180), LONDON, date(2027, 3, 28), date(2027, 3, 28)
    )
    assert (starts_at, ends_at) == (utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 3, 30))
    assert ends_at.astimezone(ZoneInfo(LONDON)).time() == time(4, 30)


# --- nonexistent and ambiguous local times ------------------------------------------------------------------


def test_gap_moves_forward_to_the_end_of_the_gap_london() -> None:
    # 01:30 on 28 March 2027 never happens in London (01:00 GMT -> 02:00 BST): the meeting starts at 02:00 BST.
    result = occurrences(weekly(SUN, time(1, 30), minutes=60), LONDON, date(2027, 3, 21), date(2027, 4, 4))
    assert result == [
        (utc(2027, 3, 21, 1, 30), utc(2027, 3, 21, 2, 30)),
        (utc(2027, 3, 28, 1), utc(2027, 3, 28, 2)),
        (utc(2027, 4, 4, 0, 30), utc(2027, 4, 4, 1, 30)),
    ]
    assert result[1][0].astimezone(ZoneInfo(LONDON)).time() == time(2)


def test_gap_moves_forward_to_the_end_of_the_gap_new_york() -> None:
    # 02:30 on 14 March 2027 never happens in New York (02:00 EST -> 03:00 EDT): 03:00 EDT is 07:00 UTC.
    result = starts(weekly(SUN, time(2, 30)), NEW_YORK, date(2027, 3, 7), date(2027, 3, 21))
    assert result == [utc(2027, 3, 7, 7, 30), utc(2027, 3, 14, 7), utc(2027, 3, 21, 6, 30)]


def test_gap_start_itself_is_shifted() -> None:
    # 01:00:00 is the first wall-clock reading that is skipped in London.
    assert starts(weekly(SUN, time(1)), LONDON, date(2027, 3, 28), date(2027, 3, 28)) == [utc(2027, 3, 28, 1)]


def test_fold_takes_the_first_occurrence_london() -> None:
    # 01:30 on 31 October 2027 happens at 00:30 UTC (BST) and again at 01:30 UTC (GMT): take the first.
    result = starts(weekly(SUN, time(1, 30)), LONDON, date(2027, 10, 24), date(2027, 11, 7))
    assert result == [utc(2027, 10, 24, 0, 30), utc(2027, 10, 31, 0, 30), utc(2027, 11, 7, 1, 30)]


def test_fold_takes_the_first_occurrence_new_york() -> None:
    # 01:30 on 7 November 2027 is 05:30 UTC (EDT) and 06:30 UTC (EST): take the first.
    result = starts(weekly(SUN, time(1, 30)), NEW_YORK, date(2027, 10, 31), date(2027, 11, 14))
    assert result == [utc(2027, 10, 31, 5, 30), utc(2027, 11, 7, 5, 30), utc(2027, 11, 14, 6, 30)]


def test_fold_flag_on_start_time_is_ignored() -> None:
    # A time carrying fold=1 must not silently pick the second reading.
    result = starts(weekly(SUN, time(1, 30, fold=1)), LONDON, date(2027, 10, 31), date(2027, 10, 31))
    assert result == [utc(2027, 10, 31, 0, 30)]


def test_gap_of_a_whole_day_moves_to_the_next_existing_instant() -> None:
    # Samoa skipped Friday 30 December 2011 (-10 -> +14): the meeting is at midnight on the 31st local.
    friday = weekly(FRI, time(19), anchor=date(2011, 1, 1))
    result = starts(friday, "Pacific/Apia", date(2011, 12, 23), date(2011, 12, 30))
    assert result == [utc(2011, 12, 24, 5), utc(2011, 12, 30, 10)]


# --- fortnightly --------------------------------------------------------------------------------------------


def test_fortnightly_counts_from_the_anchor_week() -> None:
    # Anchor Wednesday 6 January 2027; its week starts Monday 4 January.
    thursday = Schedule(FORTNIGHTLY, THU, time(10), 60, date(2027, 1, 6))
    assert starts(thursday, LONDON, date(2027, 1, 1), date(2027, 2, 28)) == [
        utc(2027, 1, 7, 10),
        utc(2027, 1, 21, 10),
        utc(2027, 2, 4, 10),
        utc(2027, 2, 18, 10),
    ]


def test_fortnightly_weekday_before_anchor_in_anchor_week_waits_a_fortnight() -> None:
    # Monday 4 January is in the anchor's week but before the anchor, so the first meeting is 18 January.
    monday = Schedule(FORTNIGHTLY, MON, time(10), 60, date(2027, 1, 6))
    assert starts(monday, LONDON, date(2027, 1, 1), date(2027, 2, 1)) == [utc(2027, 1, 18, 10), utc(2027, 2, 1, 10)]


@pytest.mark.parametrize(
    ("start", "end", "expected_days"),
    [
        (date(2027, 1, 25), date(2027, 2, 28), [(2, 4), (2, 18)]),  # range opens in an "off" week
        (date(2027, 6, 1), date(2027, 6, 30), [(6, 10), (6, 24)]),  # months later, across BST
        (date(2027, 1, 8), date(2027, 1, 20), []),  # between two meetings
    ],
)
def test_fortnightly_parity_holds_wherever_the_range_starts(
    start: date, end: date, expected_days: list[tuple[int, int]]
) -> None:
    thursday = Schedule(FORTNIGHTLY, THU, time(10), 60, date(2027, 1, 6))
    assert list(meeting_dates(thursday, start, end)) == [date(2027, m, d) for m, d in expected_days]


def test_fortnightly_across_the_year_end() -> None:
    # 53-week years must not flip the parity: count days, not ISO week numbers.
    friday = Schedule(FORTNIGHTLY, FRI, time(10), 60, date(2026, 12, 18))
    assert list(meeting_dates(friday, date(2026, 12, 1), date(2027, 1, 31))) == [
        date(2026, 12, 18),
        date(2027, 1, 1),
        date(2027, 1, 15),
        date(2027, 1, 29),
    ]


# --- monthly ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("week_of_month", "expected"),
    [
        (1, [date(2027, 1, 1), date(2027, 2, 5)]),
        (2, [date(2027, 1, 8), date(2027, 2, 12)]),
        (3, [date(2027, 1, 15), date(2027, 2, 19)]),
        (4, [date(2027, 1, 22), date(2027, 2, 26)]),
        (-1, [date(2027, 1, 29), date(2027, 2, 26)]),  # January has five Fridays; last Friday of Feb 2027 is 26th
    ],
)
def test_monthly_nth_friday(week_of_month: int, expected: list[date]) -> None:
    schedule = Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), week_of_month)
    result = occurrences(schedule, LONDON, date(2027, 1, 1), date(2027, 2, 28))
    assert result == [(utc(d.year, d.month, d.day, 19), utc(d.year, d.month, d.day, 20, 30)) for d in expected]


def test_monthly_last_weekday_on_leap_day() -> None:
    last_tuesday = Schedule(MONTHLY, TUE, time(19), 90, date(2028, 1, 1), -1)
    assert list(meeting_dates(last_tuesday, date(2028, 2, 1), date(2028, 3, 31))) == [
        date(2028, 2, 29),
        date(2028, 3, 28),
    ]


def test_monthly_across_the_spring_change() -> None:
    last_friday = Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), -1)
    assert starts(last_friday, LONDON, date(2027, 3, 1), date(2027, 4, 30)) == [
        utc(2027, 3, 26, 19),
        utc(2027, 4, 30, 18),
    ]


def test_monthly_respects_anchor_and_range_within_a_month() -> None:
    first_friday = Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 10), 1)
    assert list(meeting_dates(first_friday, date(2027, 1, 1), date(2027, 3, 4))) == [date(2027, 2, 5)]
    assert list(meeting_dates(first_friday, date(2027, 2, 6), date(2027, 3, 4))) == []


def test_monthly_across_the_year_end() -> None:
    second_monday = Schedule(MONTHLY, MON, time(19), 90, date(2026, 1, 1), 2)
    assert list(meeting_dates(second_monday, date(2026, 11, 1), date(2027, 2, 28))) == [
        date(2026, 11, 9),
        date(2026, 12, 14),
        date(2027, 1, 11),
        date(2027, 2, 8),
    ]


# --- range boundaries and the anchor ------------------------------------------------------------------------


def test_range_boundaries_are_inclusive() -> None:
    tuesday = weekly(TUE, time(19))
    assert starts(tuesday, LONDON, date(2027, 1, 5), date(2027, 1, 12)) == [utc(2027, 1, 5, 19), utc(2027, 1, 12, 19)]
    assert starts(tuesday, LONDON, date(2027, 1, 5), date(2027, 1, 5)) == [utc(2027, 1, 5, 19)]
    assert starts(tuesday, LONDON, date(2027, 1, 6), date(2027, 1, 11)) == []


def test_anchor_later_than_range_start() -> None:
    tuesday = weekly(TUE, time(19), anchor=date(2027, 3, 20))
    assert starts(tuesday, LONDON, date(2027, 3, 1), date(2027, 4, 6)) == [
        utc(2027, 3, 23, 19),
        utc(2027, 3, 30, 18),
        utc(2027, 4, 6, 18),
    ]


def test_anchor_on_a_meeting_day_is_included() -> None:
    tuesday = weekly(TUE, time(19), anchor=date(2027, 3, 23))
    assert starts(tuesday, LONDON, date(2027, 3, 1), date(2027, 3, 23)) == [utc(2027, 3, 23, 19)]


def test_anchor_after_range_gives_nothing() -> None:
    assert (
        occurrences(weekly(TUE, time(19), anchor=date(2028, 1, 1)), LONDON, date(2027, 1, 1), date(2027, 12, 31)) == []
    )


def test_a_full_leap_year_is_allowed_and_one_day_more_is_not() -> None:
    tuesday = weekly(TUE, time(19), anchor=date(2028, 1, 1))
    assert len(occurrences(tuesday, LONDON, date(2028, 1, 1), date(2028, 12, 31))) == 52
    with pytest.raises(ScheduleError) as excinfo:
        occurrences(tuesday, LONDON, date(2028, 1, 1), date(2029, 1, 1))
    assert excinfo.value.field == "end"
    assert str(MAX_RANGE_DAYS) in excinfo.value.message


def test_check_range() -> None:
    check_range(date(2027, 1, 1), date(2027, 1, 1))
    check_range(date(2027, 1, 1), date(2028, 1, 1))  # 366 days counting both ends
    check_range(date(2027, 1, 1), date(2027, 1, 10), max_range_days=10)
    with pytest.raises(ScheduleError, match="at most 10 days"):
        check_range(date(2027, 1, 1), date(2027, 1, 11), max_range_days=10)
    with pytest.raises(ScheduleError, match="on or after") as excinfo:
        check_range(date(2027, 1, 2), date(2027, 1, 1))
    assert excinfo.value.field == "end"


def test_dates_beyond_the_calendar_are_a_schedule_error() -> None:
    late = weekly(FRI, time(23), anchor=date(9999, 1, 1), minutes=480)
    with pytest.raises(ScheduleError) as excinfo:
        occurrences(late, "UTC", date(9999, 12, 1), date(9999, 12, 31))
    assert excinfo.value.field == "end"
    early = weekly(MON, time(1), anchor=date(1, 1, 1))
    with pytest.raises(ScheduleError) as excinfo:
        occurrences(early, "Asia/Tokyo", date(1, 1, 1), date(1, 1, 10))
    assert excinfo.value.field == "start"


# --- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1)), "week_of_month"),
        (Schedule(WEEKLY, FRI, time(19), 90, date(2027, 1, 1), 1), "week_of_month"),
        (Schedule(FORTNIGHTLY, FRI, time(19), 90, date(2027, 1, 1), -1), "week_of_month"),
        (Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), 5), "week_of_month"),
        (Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), 0), "week_of_month"),
        (Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), -2), "week_of_month"),
        (Schedule(WEEKLY, -1, time(19), 90, date(2027, 1, 1)), "weekday"),
        (Schedule(WEEKLY, 7, time(19), 90, date(2027, 1, 1)), "weekday"),
        (Schedule(WEEKLY, True, time(19), 90, date(2027, 1, 1)), "weekday"),
        (Schedule(WEEKLY, FRI, time(19), 14, date(2027, 1, 1)), "duration_minutes"),
        (Schedule(WEEKLY, FRI, time(19), 481, date(2027, 1, 1)), "duration_minutes"),
        (Schedule(WEEKLY, FRI, time(19, tzinfo=UTC), 90, date(2027, 1, 1)), "start_time"),
        (Schedule(WEEKLY, FRI, time(19), 90, datetime(2027, 1, 1, tzinfo=UTC)), "anchor_date"),
        (Schedule("weekly", FRI, time(19), 90, date(2027, 1, 1)), "frequency"),  # type: ignore[arg-type]
    ],
)
def test_invalid_schedules_are_refused(schedule: Schedule, field: str) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        schedule.validate()
    assert excinfo.value.field == field
    assert excinfo.value.code is ErrorCode.INVALID
    assert isinstance(excinfo.value, DomainError)
    with pytest.raises(ScheduleError):
        occurrences(schedule, LONDON, date(2027, 1, 1), date(2027, 1, 31))


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(WEEKLY, MON, time(0), 15, date(2027, 1, 1)),
        Schedule(FORTNIGHTLY, SUN, time(23, 59), 480, date(2027, 1, 1)),
        *(Schedule(MONTHLY, WED, time(9), 60, date(2027, 1, 1), n) for n in (1, 2, 3, 4, -1)),
    ],
)
def test_valid_schedules_pass(schedule: Schedule) -> None:
    schedule.validate()


@pytest.mark.parametrize(
    "key",
    ["Mars/Olympus_Mons", "", "Europe", "europe/london", "UTC ", "../../etc/passwd", "/etc/localtime", "localtime"],
)
def test_unknown_timezones_are_refused(key: str) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        occurrences(weekly(TUE, time(19)), key, date(2027, 1, 1), date(2027, 1, 31))
    assert excinfo.value.field == "timezone"


def test_known_timezones_load() -> None:
    assert load_timezone(LONDON) == ZoneInfo(LONDON)
    assert starts(weekly(TUE, time(19)), "UTC", date(2027, 7, 6), date(2027, 7, 6)) == [utc(2027, 7, 6, 19)]


# --- from_group ---------------------------------------------------------------------------------------------


def scheduled_group(**overrides: object) -> Group:
    values: dict[str, object] = {
        "schedule_frequency": MONTHLY,
        "schedule_weekday": FRI,
        "schedule_week_of_month": -1,
        "schedule_start_time": time(19),
        "schedule_duration_minutes": 90,
        "schedule_anchor_date": date(2027, 1, 1),
    }
    values.update(overrides)
    return Group(name="Friday circle", **values)


def test_from_group_without_schedule_is_none() -> None:
    assert Schedule.from_group(Group(name="Unscheduled")) is None


def test_from_group_copies_the_schedule() -> None:
    assert Schedule.from_group(scheduled_group()) == Schedule(MONTHLY, FRI, time(19), 90, date(2027, 1, 1), -1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schedule_anchor_date": None}, "anchor_date"),
        ({"schedule_frequency": None}, "frequency"),
        ({"schedule_week_of_month": None}, "week_of_month"),
        ({"schedule_frequency": WEEKLY}, "week_of_month"),
        ({"schedule_weekday": 9}, "weekday"),
    ],
)
def test_from_group_refuses_incomplete_or_inconsistent_schedules(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        Schedule.from_group(scheduled_group(**overrides))
    assert excinfo.value.field == field


# --- properties ---------------------------------------------------------------------------------------------

ZONES_WITH_DST = [LONDON, NEW_YORK, "Australia/Sydney", "Australia/Lord_Howe", "America/Santiago", "Asia/Tehran"]
"""Southern-hemisphere changes, a 30-minute change (Lord Howe) and midnight changes (Santiago, Tehran)."""


@dataclass(frozen=True)
class Change:
    """One clock change: the UTC instant it happens and the zone's offset either side of it."""

    key: str
    at: datetime
    before: timedelta
    after: timedelta


def offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def first_change_after(zone: ZoneInfo, instant: datetime, step: timedelta) -> datetime:
    """Step from ``instant`` until the offset differs; the change lies in the last step taken."""
    offset = offset_at(zone, instant)
    while offset_at(zone, instant + step) == offset:
        instant += step
    return instant


def changes_in(key: str, year: int) -> list[Change]:
    """The year's clock changes, found by scanning days, then hours, then minutes.

    Deliberately independent of the code under test: offsets are only ever read for UTC instants, which are
    never ambiguous, and every change in these zones and years happens on a whole minute.
    """
    zone = ZoneInfo(key)
    found: list[Change] = []
    day = datetime(year, 1, 1, 12, tzinfo=UTC)
    while day.year == year:
        if offset_at(zone, day) != offset_at(zone, day + timedelta(days=1)):
            hour = first_change_after(zone, day, timedelta(hours=1))
            at = first_change_after(zone, hour, timedelta(minutes=1)) + timedelta(minutes=1)
            found.append(Change(key, at, offset_at(zone, at - timedelta(minutes=1)), offset_at(zone, at)))
        day += timedelta(days=1)
    return found


CHANGES = [change for key in ZONES_WITH_DST for year in range(2005, 2041, 5) for change in changes_in(key, year)]

zones = st.one_of(
    st.sampled_from(ZONES_WITH_DST),
    st.timezone_keys(allow_prefix=False).filter(lambda key: key not in {"localtime", "posixrules"}),
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    frequency = draw(st.sampled_from(ScheduleFrequency))
    week_of_month = draw(st.sampled_from([1, 2, 3, 4, -1])) if frequency is MONTHLY else None
    return Schedule(
        frequency=frequency,
        weekday=draw(st.integers(0, 6)),
        start_time=draw(st.times()),
        duration_minutes=draw(st.integers(15, 480)),
        anchor_date=draw(st.dates(date(1990, 1, 1), date(2060, 12, 31))),
        week_of_month=week_of_month,
    )


@st.composite
def ranges(draw: st.DrawFn) -> tuple[date, date]:
    start = draw(st.dates(date(1990, 1, 1), date(2060, 12, 31)))
    return start, start + timedelta(days=draw(st.integers(0, MAX_RANGE_DAYS - 1)))


def is_meeting_day(schedule: Schedule, day: date) -> bool:
    """A day-by-day oracle, written independently of the stepping code under test."""
    if day < schedule.anchor_date or day.weekday() != schedule.weekday:
        return False
    if schedule.frequency is FORTNIGHTLY:
        anchor_monday = schedule.anchor_date - timedelta(days=schedule.anchor_date.weekday())
        return (day - anchor_monday).days // 7 % 2 == 0
    if schedule.frequency is MONTHLY:
        if schedule.week_of_month == -1:
            return (day + timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 + 1 == schedule.week_of_month
    return True


def assert_occurrence_properties(schedule: Schedule, key: str, start: date, end: date) -> None:
    """Wall-clock time and weekday kept (or the first instant after a gap), sorted, unique, exact duration."""
    zone = ZoneInfo(key)
    result = occurrences(schedule, key, start, end)
    days = list(meeting_dates(schedule, start, end))
    assert len(result) == len(days)
    for day, (starts_at, ends_at) in zip(days, result, strict=True):
        assert starts_at.utcoffset() == timedelta(0)
        assert ends_at - starts_at == timedelta(minutes=schedule.duration_minutes)
        wanted = datetime.combine(day, schedule.start_time)
        local = starts_at.astimezone(zone)
        assert local.fold == 0, f"{local} is the second reading of an ambiguous time"
        if local.replace(tzinfo=None) != wanted:
            # Only in a gap: the wanted reading is skipped, and this is the first instant after it.
            before = (starts_at - timedelta(microseconds=1)).astimezone(zone).replace(tzinfo=None)
            assert before < wanted < local.replace(tzinfo=None)
        else:
            assert local.time() == schedule.start_time
            assert local.weekday() == schedule.weekday
            assert start <= local.date() <= end
            assert local.date() >= schedule.anchor_date
    instants = [starts_at for starts_at, _ in result]
    assert instants == sorted(set(instants))


@given(schedules(), ranges())
def test_meeting_dates_match_a_day_by_day_oracle(schedule: Schedule, span: tuple[date, date]) -> None:
    start, end = span
    every_day = (start + timedelta(days=n) for n in range((end - start).days + 1))
    assert list(meeting_dates(schedule, start, end)) == [day for day in every_day if is_meeting_day(schedule, day)]


@given(schedules(), zones, ranges())
def test_occurrences_in_any_zone(schedule: Schedule, key: str, span: tuple[date, date]) -> None:
    assert_occurrence_properties(schedule, key, *span)


def test_changes_were_found() -> None:
    # Guards the oracle below: two changes a year in most of these zones, none in Tehran after 2022.
    assert len(CHANGES) > 60
    assert {change.key for change in CHANGES} == set(ZONES_WITH_DST)
    assert {change.after - change.before for change in CHANGES} >= {
        timedelta(hours=1),
        timedelta(hours=-1),
        timedelta(minutes=30),
        timedelta(minutes=-30),
    }


@given(
    st.sampled_from(CHANGES),
    st.data(),
    st.sampled_from(ScheduleFrequency),
    st.integers(0, 8),
    st.integers(15, 480),
)
def test_occurrences_around_clock_changes(
    change: Change, data: st.DataObject, frequency: ScheduleFrequency, weeks_before: int, minutes: int
) -> None:
    """A meeting at any wall time within 90 minutes of a change lands where an independent oracle says.

    The oracle tries both offsets: a wall time readable with neither is in a gap (expect the change instant),
    with both is in a fold (expect the earlier), with one is ordinary.
    """
    skipped_or_repeated_from = (change.at + min(change.before, change.after)).replace(tzinfo=None)
    skipped_or_repeated_to = (change.at + max(change.before, change.after)).replace(tzinfo=None)
    around = timedelta(minutes=90)
    wanted = data.draw(
        st.one_of(
            st.datetimes(skipped_or_repeated_from, skipped_or_repeated_to - timedelta(microseconds=1)),
            st.datetimes(skipped_or_repeated_from - around, skipped_or_repeated_to + around),
        )
    )
    day = wanted.date()
    week_of_month = ((day.day - 1) // 7 + 1 if day.day <= 28 else -1) if frequency is MONTHLY else None
    anchor = day - timedelta(weeks=weeks_before * (2 if frequency is FORTNIGHTLY else 1))
    schedule = Schedule(frequency, day.weekday(), wanted.time(), minutes, anchor, week_of_month)

    candidates = [
        instant
        for instant, offset in ((wanted - change.before, change.before), (wanted - change.after, change.after))
        if (instant.replace(tzinfo=UTC) < change.at) == (offset == change.before)
    ]
    expected = min(candidates).replace(tzinfo=UTC) if candidates else change.at
    event({0: "gap", 1: "ordinary", 2: "fold"}[len(candidates)])
    assert starts(schedule, change.key, day, day) == [expected]
    assert_occurrence_properties(schedule, change.key, day - timedelta(days=62), day + timedelta(days=62))


@given(st.dates(date(1990, 1, 1), date(2060, 12, 31)), st.integers(0, 23), st.integers(-12, 14))
def test_fixed_offset_zones_have_no_surprises(day: date, hour: int, offset_hours: int) -> None:
    key = "UTC" if offset_hours == 0 else f"Etc/GMT{-offset_hours:+d}"  # POSIX sign: Etc/GMT-1 is UTC+1
    schedule = weekly(day.weekday(), time(hour), anchor=day)
    expected = datetime.combine(day, time(hour), tzinfo=timezone(timedelta(hours=offset_hours))).astimezone(UTC)
    assert starts(schedule, key, day, day) == [expected]

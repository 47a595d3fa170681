"""Schedules and sessions through HTTP: setGroupSchedule, scheduleSessions (DST-correct, never duplicating),
cancelSession and rescheduleSession."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import GroupStatus, Role, ScheduleFrequency, SessionStatus
from programme_api.domain.principal import Principal

from .api import GraphQLClient, errors
from .factories import (
    audit_events,
    gid,
    make_group,
    make_organisation,
    make_region,
    make_session,
    principal_for,
    row_counts,
    weekly_schedule,
)

SET_SCHEDULE = """
mutation($input: SetGroupScheduleInput!) {
  setGroupSchedule(input: $input) {
    group { id version schedule { frequency weekday weekOfMonth startTime durationMinutes anchorDate } }
    userErrors { field message code }
  }
}
"""
SCHEDULE_SESSIONS = """
mutation($input: ScheduleSessionsInput!) {
  scheduleSessions(input: $input) {
    group { id } createdCount sessions { id startsAt endsAt status }
    userErrors { field message code }
  }
}
"""
CANCEL = """
mutation($input: CancelSessionInput!) {
  cancelSession(input: $input) { session { id status cancellationReason version } userErrors { field message code } }
}
"""
RESCHEDULE = """
mutation($input: RescheduleSessionInput!) {
  rescheduleSession(input: $input) { session { id startsAt endsAt status version } userErrors { field message code } }
}
"""


async def mutate(gql: GraphQLClient, query: str, field: str, input: dict[str, Any], as_: Principal) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(query, {"input": input}, as_=as_))[field]
    return result


def weekly_input(group: Any, **overrides: Any) -> dict[str, Any]:
    values = {"groupId": gid(group), "version": 1, "frequency": "WEEKLY", "weekday": 2, "startTime": "19:00:00",
              "durationMinutes": 90, "anchorDate": "2026-01-01"}  # fmt: skip
    return values | overrides


def utc(text: str) -> str:
    """The API's rendering of a UTC instant given as ``YYYY-MM-DDTHH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


# --- setGroupSchedule ----------------------------------------------------------------------------------------


async def test_set_group_schedule_stores_the_local_pattern(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))

    result = await mutate(gql, SET_SCHEDULE, "setGroupSchedule", weekly_input(group), principal_for(organisation))

    assert result["userErrors"] == []
    assert result["group"]["version"] == 2
    assert result["group"]["schedule"] == {"frequency": "WEEKLY", "weekday": 2, "weekOfMonth": None,
                                           "startTime": "19:00:00", "durationMinutes": 90,
                                           "anchorDate": "2026-01-01"}  # fmt: skip
    [event] = await audit_events(db, "group.schedule")
    assert event.details["frequency"] == "weekly"


async def test_set_group_schedule_refuses_invalid_patterns(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    admin = principal_for(organisation)
    before = await row_counts(db)

    cases = [
        (weekly_input(group, frequency="MONTHLY"), "input.weekOfMonth", "INVALID"),
        (weekly_input(group, weekOfMonth=2), "input.weekOfMonth", "INVALID"),
        (weekly_input(group, weekday=7), "input.weekday", "INVALID"),
        (weekly_input(group, durationMinutes=5), "input.durationMinutes", "INVALID"),
        (weekly_input(group, version=4), "input.version", "CONFLICT"),
    ]
    for input, field, code in cases:
        result = await mutate(gql, SET_SCHEDULE, "setGroupSchedule", input, admin)
        assert errors(result) == [(field, code)], input
        assert result["group"] is None

    assert await row_counts(db) == before


# --- scheduleSessions ----------------------------------------------------------------------------------------


async def test_weekly_london_schedule_follows_the_clock_across_both_dst_changes(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db, timezone="Europe/London")
    group = await make_group(db, await make_region(db, organisation))
    admin = principal_for(organisation)
    await mutate(gql, SET_SCHEDULE, "setGroupSchedule", weekly_input(group), admin)

    result = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions",
                          {"groupId": gid(group), "from": "2026-03-16", "to": "2026-11-06"}, admin)  # fmt: skip

    assert result["userErrors"] == []
    starts = [session["startsAt"] for session in result["sessions"]]
    assert result["createdCount"] == len(starts) == 34
    # BST begins Sunday 29 March and ends Sunday 25 October 2026: 19:00 London is 19:00 UTC, then 18:00, then 19:00.
    assert starts[:3] == [utc("2026-03-18T19:00"), utc("2026-03-25T19:00"), utc("2026-04-01T18:00")]
    assert starts[-3:] == [utc("2026-10-21T18:00"), utc("2026-10-28T19:00"), utc("2026-11-04T19:00")]
    assert all(session["status"] == "SCHEDULED" for session in result["sessions"])
    assert result["sessions"][2]["endsAt"] == utc("2026-04-01T19:30")


async def test_scheduling_twice_creates_no_duplicates(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation), **weekly_schedule())
    admin = principal_for(organisation)
    march = {"groupId": gid(group), "from": "2026-03-01", "to": "2026-03-31"}

    first = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", march, admin)
    counted = await row_counts(db)
    second = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", march, admin)
    overlapping = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", march | {"to": "2026-04-08"}, admin)

    assert first["createdCount"] == 4
    assert second["createdCount"] == 0
    assert second["sessions"] == first["sessions"]
    assert (await row_counts(db))["group_sessions"] == counted["group_sessions"] + 2
    assert overlapping["createdCount"] == 2
    assert [s["id"] for s in overlapping["sessions"][:4]] == [s["id"] for s in first["sessions"]]


async def test_a_date_that_already_has_a_session_is_skipped(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation), **weekly_schedule())
    moved = await make_session(
        db, group, starts_at=datetime(2026, 3, 4, 17, tzinfo=UTC), status=SessionStatus.SCHEDULED
    )

    result = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions",
                          {"groupId": gid(group), "from": "2026-03-02", "to": "2026-03-15"},
                          principal_for(organisation))  # fmt: skip

    assert result["createdCount"] == 1
    assert [s["startsAt"] for s in result["sessions"]] == [moved.starts_at.isoformat(), utc("2026-03-11T19:00")]


async def test_monthly_and_fortnightly_patterns(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    last_friday = await make_group(db, region, schedule_frequency=ScheduleFrequency.MONTHLY, schedule_weekday=4,
                                   schedule_week_of_month=-1, schedule_start_time=time(10),
                                   schedule_duration_minutes=60, schedule_anchor_date=date(2026, 1, 1))  # fmt: skip
    fortnightly = await make_group(db, region, **weekly_schedule(weekday=0, anchor=date(2026, 1, 5)))
    fortnightly.schedule_frequency = ScheduleFrequency.FORTNIGHTLY
    await db.flush()
    admin = principal_for(organisation)
    span = {"from": "2026-01-01", "to": "2026-02-28"}

    monthly = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", span | {"groupId": gid(last_friday)}, admin)
    fortnight = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", span | {"groupId": gid(fortnightly)}, admin)

    assert [s["startsAt"] for s in monthly["sessions"]] == [utc("2026-01-30T10:00"), utc("2026-02-27T10:00")]
    assert [s["startsAt"][:10] for s in fortnight["sessions"]] == ["2026-01-05", "2026-01-19", "2026-02-02",
                                                                   "2026-02-16"]  # fmt: skip


async def test_schedule_sessions_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    region = await make_region(db, organisation)
    unscheduled = await make_group(db, region)
    paused = await make_group(db, region, status=GroupStatus.PAUSED, **weekly_schedule())
    scheduled = await make_group(db, region, **weekly_schedule())
    foreign = await make_group(db, await make_region(db, other), **weekly_schedule())
    admin = principal_for(organisation)
    before = await row_counts(db)

    cases = [
        ({"groupId": gid(unscheduled)}, ("input.groupId", "SCHEDULE_MISSING")),
        ({"groupId": gid(paused)}, ("input.groupId", "GROUP_NOT_ACTIVE")),
        ({"groupId": gid(foreign)}, ("input.groupId", "NOT_FOUND")),
        ({"groupId": gid(scheduled), "to": "2026-02-01"}, ("input.to", "INVALID")),
        ({"groupId": gid(scheduled), "to": "2027-06-01"}, ("input.to", "INVALID")),
    ]
    for overrides, expected in cases:
        input = {"from": "2026-03-01", "to": "2026-03-31"} | overrides
        result = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", input, admin)
        assert errors(result) == [expected], overrides
        assert result["sessions"] == []

    assert await row_counts(db) == before


async def test_coordinators_schedule_only_their_regions(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    southern = await make_group(db, south, **weekly_schedule())
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    before = await row_counts(db)

    march = {"groupId": gid(southern), "from": "2026-03-01", "to": "2026-03-31"}
    result = await mutate(gql, SCHEDULE_SESSIONS, "scheduleSessions", march, coordinator)
    schedule = await mutate(gql, SET_SCHEDULE, "setGroupSchedule", weekly_input(southern), coordinator)

    assert errors(result) == errors(schedule) == [("input.groupId", "NOT_FOUND")]
    assert await row_counts(db) == before


# --- cancelSession / rescheduleSession -----------------------------------------------------------------------


async def test_cancel_session_keeps_the_reason(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    session = await make_session(db, await make_group(db, await make_region(db, organisation)),
                                 status=SessionStatus.SCHEDULED)  # fmt: skip

    result = await mutate(gql, CANCEL, "cancelSession",
                          {"sessionId": gid(session), "version": 1, "reason": "Venue flooded"},
                          principal_for(organisation))  # fmt: skip

    assert result["session"] == {"id": gid(session), "status": "CANCELLED", "cancellationReason": "Venue flooded",
                                 "version": 2}  # fmt: skip
    [event] = await audit_events(db, "session.cancel")
    assert event.target_id == str(session.id)


async def test_cancel_session_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    scheduled = await make_session(db, group, status=SessionStatus.SCHEDULED)
    held = await make_session(db, group, status=SessionStatus.HELD)
    foreign = await make_session(db, await make_group(db, await make_region(db, other)), status=SessionStatus.SCHEDULED)
    admin = principal_for(organisation)
    before = await row_counts(db)

    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"sessionId": gid(scheduled), "reason": "   "}, ("input.reason", "INVALID")),
        ({"sessionId": gid(scheduled), "version": 3}, ("input.version", "CONFLICT")),
        ({"sessionId": gid(held)}, ("input.sessionId", "INVALID_STATE")),
        ({"sessionId": gid(foreign)}, ("input.sessionId", "NOT_FOUND")),
        ({"sessionId": gid(group)}, ("input.sessionId", "NOT_FOUND")),
    ]
    for overrides, expected in cases:
        input = {"version": 1, "reason": "Ill"} | overrides
        assert errors(await mutate(gql, CANCEL, "cancelSession", input, admin)) == [expected], overrides

    assert await row_counts(db) == before


async def test_reschedule_session_moves_it_and_audits_the_reason(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    starts = datetime(2026, 3, 4, 19, tzinfo=UTC)
    session = await make_session(db, group, starts_at=starts, status=SessionStatus.SCHEDULED)

    result = await mutate(gql, RESCHEDULE, "rescheduleSession",
                          {"sessionId": gid(session), "version": 1, "startsAt": "2026-03-05T20:00:00+01:00",
                           "endsAt": "2026-03-05T21:30:00+01:00", "reason": "Hall double-booked"},
                          principal_for(organisation))  # fmt: skip

    assert result["session"] == {"id": gid(session), "startsAt": utc("2026-03-05T19:00"),
                                 "endsAt": utc("2026-03-05T20:30"), "status": "SCHEDULED", "version": 2}  # fmt: skip
    [event] = await audit_events(db, "session.reschedule")
    assert event.details["reason"] == "Hall double-booked"
    assert event.details["from"][0] == utc("2026-03-04T19:00")


async def test_reschedule_session_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    session = await make_session(db, group, starts_at=datetime(2026, 3, 4, 19, tzinfo=UTC),
                                 status=SessionStatus.SCHEDULED)  # fmt: skip
    await make_session(db, group, starts_at=datetime(2026, 3, 11, 19, tzinfo=UTC))
    cancelled = await make_session(db, group, status=SessionStatus.CANCELLED, cancellation_reason="Snow")
    admin = principal_for(organisation)
    before = await row_counts(db)

    cases = [
        ({"endsAt": "2026-03-06T18:00:00+00:00"}, ("input.endsAt", "INVALID")),
        ({"startsAt": "2026-03-06T19:00:00"}, ("input.startsAt", "INVALID")),
        ({"startsAt": "2026-03-11T19:00:00+00:00", "endsAt": "2026-03-11T20:00:00+00:00"},
         ("input.startsAt", "DUPLICATE")),
        ({"sessionId": gid(cancelled)}, ("input.sessionId", "INVALID_STATE")),
        ({"reason": ""}, ("input.reason", "INVALID")),
    ]  # fmt: skip
    for overrides, expected in cases:
        input = {"sessionId": gid(session), "version": 1, "startsAt": "2026-03-06T19:00:00+00:00",
                 "endsAt": "2026-03-06T20:30:00+00:00", "reason": "Moved"} | overrides  # fmt: skip
        assert errors(await mutate(gql, RESCHEDULE, "rescheduleSession", input, admin)) == [expected], overrides

    assert await row_counts(db) == before

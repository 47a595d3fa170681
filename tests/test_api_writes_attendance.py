"""recordAttendance through HTTP: a whole register in one call, replaced when resent, in bounded statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import EnrolmentStatus, Group, GroupSession, Participant, Role, SessionStatus
from programme_api.domain.principal import Principal

from .api import GraphQLClient, errors
from .conftest import StatementCounter
from .factories import (
    assign,
    audit_events,
    enrol,
    gid,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
    row_counts,
)

RECORD = """
mutation($input: RecordAttendanceInput!) {
  recordAttendance(input: $input) {
    session { id status dropinCount version attendanceCounts { present excused unexcused dropins } }
    attendance { id status participant { id } }
    userErrors { field message code }
  }
}
"""


async def mutate(gql: GraphQLClient, input: dict[str, Any], as_: Principal) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(RECORD, {"input": input}, as_=as_))["recordAttendance"]
    return result


def register(session: GroupSession, lines: list[tuple[Participant, str]], **overrides: Any) -> dict[str, Any]:
    entries = [{"participantId": gid(participant), "status": status} for participant, status in lines]
    return {"sessionId": gid(session), "version": 1, "entries": entries, "dropinCount": 0} | overrides


async def group_with_members(db: AsyncSession, organisation: Any, members: int) -> tuple[Group, list[Participant]]:
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=members + 1)
    people = [await make_participant(db, region) for _ in range(members)]
    for person in people:
        await enrol(db, person, group)
    return group, people


async def test_recording_a_register_marks_the_session_held(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group, (ann, bob, cat) = await group_with_members(db, organisation, 3)
    session = await make_session(db, group, status=SessionStatus.SCHEDULED)
    lines = [(ann, "PRESENT"), (bob, "EXCUSED"), (cat, "UNEXCUSED")]

    result = await mutate(gql, register(session, lines, dropinCount=2), principal_for(organisation))

    assert result["userErrors"] == []
    counts = {"present": 1, "excused": 1, "unexcused": 1, "dropins": 2}
    assert result["session"] == {"id": gid(session), "status": "HELD", "dropinCount": 2, "version": 2,
                                 "attendanceCounts": counts}  # fmt: skip
    assert [(row["participant"]["id"], row["status"]) for row in result["attendance"]] == [
        (gid(ann), "PRESENT"), (gid(bob), "EXCUSED"), (gid(cat), "UNEXCUSED")
    ]  # fmt: skip
    [event] = await audit_events(db, "session.record_attendance")
    assert event.details == {"present": 1, "excused": 1, "unexcused": 1, "dropins": 2}


async def test_recording_again_replaces_the_register(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group, (ann, bob, cat) = await group_with_members(db, organisation, 3)
    session = await make_session(db, group, status=SessionStatus.SCHEDULED)
    admin = principal_for(organisation)
    first = await mutate(gql, register(session, [(ann, "PRESENT"), (bob, "PRESENT"), (cat, "PRESENT")]), admin)

    second = await mutate(gql, register(session, [(ann, "PRESENT"), (cat, "EXCUSED")], version=2), admin)

    assert second["session"]["attendanceCounts"] == {"present": 1, "excused": 1, "unexcused": 0, "dropins": 0}
    assert [row["status"] for row in second["attendance"]] == ["PRESENT", "EXCUSED"]
    # Rows are updated in place: a participant's record keeps its ID across corrections.
    assert second["attendance"][0]["id"] == first["attendance"][0]["id"]
    assert second["attendance"][1]["id"] == first["attendance"][2]["id"]
    assert (await row_counts(db))["attendance"] == 2


async def test_an_empty_register_clears_the_marks_and_is_audited(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group, (ann, bob) = await group_with_members(db, organisation, 2)
    session = await make_session(db, group, status=SessionStatus.SCHEDULED)
    admin = principal_for(organisation)
    await mutate(gql, register(session, [(ann, "PRESENT"), (bob, "EXCUSED")]), admin)

    cleared = await mutate(gql, register(session, [], version=2, dropinCount=3), admin)

    assert cleared["userErrors"] == []
    assert cleared["attendance"] == []
    assert cleared["session"]["attendanceCounts"] == {"present": 0, "excused": 0, "unexcused": 0, "dropins": 3}
    assert (await row_counts(db))["attendance"] == 0
    events = await audit_events(db, "session.record_attendance")
    assert [event.details for event in events][-1] == {"present": 0, "excused": 0, "unexcused": 0, "dropins": 3}


async def test_register_refusals_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    group, (member,) = await group_with_members(db, organisation, 1)
    session = await make_session(db, group, status=SessionStatus.SCHEDULED)
    cancelled = await make_session(db, group, status=SessionStatus.CANCELLED, cancellation_reason="Snow")
    elsewhere = await make_participant(db, await make_region(db, organisation))
    waiting = await make_participant(db, await make_region(db, organisation))
    await enrol(db, waiting, group, EnrolmentStatus.WAITLISTED)
    foreign = await make_participant(db, await make_region(db, other))
    before = await row_counts(db)

    cases = [
        (register(session, [(member, "PRESENT"), (elsewhere, "PRESENT")]),
         ("input.entries.1.participantId", "NOT_ENROLLED")),
        (register(session, [(waiting, "PRESENT")]), ("input.entries.0.participantId", "NOT_ENROLLED")),
        (register(session, [(foreign, "PRESENT")]), ("input.entries.0.participantId", "NOT_FOUND")),
        (register(session, [(member, "PRESENT"), (member, "EXCUSED")]), ("input.entries.1.participantId", "INVALID")),
        (register(session, [(member, "PRESENT")], dropinCount=-1), ("input.dropinCount", "INVALID")),
        (register(session, [(member, "PRESENT")], version=5), ("input.version", "CONFLICT")),
        (register(cancelled, [(member, "PRESENT")]), ("input.sessionId", "INVALID_STATE")),
        (register(session, [(member, "PRESENT")], sessionId=gid(group)), ("input.sessionId", "NOT_FOUND")),
    ]  # fmt: skip
    for input, expected in cases:
        result = await mutate(gql, input, principal_for(organisation))
        assert errors(result) == [expected], expected
        assert result["session"] is None

    assert await row_counts(db) == before


async def test_people_who_left_after_the_session_are_still_on_its_register(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    session = await make_session(db, group, starts_at=datetime(2026, 3, 4, 19, tzinfo=UTC))
    left_later, left_before = await make_participant(db, region), await make_participant(db, region)
    for person, left_at in ((left_later, session.starts_at + timedelta(days=7)),
                            (left_before, session.starts_at - timedelta(days=7))):  # fmt: skip
        enrolment = await enrol(db, person, group, EnrolmentStatus.LEFT)
        enrolment.left_at = left_at
    await db.flush()
    admin = principal_for(organisation)

    recorded = await mutate(gql, register(session, [(left_later, "PRESENT")]), admin)
    refused = await mutate(gql, register(session, [(left_before, "PRESENT")], version=2), admin)

    assert recorded["userErrors"] == []
    assert errors(refused) == [("input.entries.0.participantId", "NOT_ENROLLED")]


async def test_facilitators_record_only_their_own_groups(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    mine, (member,) = await group_with_members(db, organisation, 1)
    theirs, (stranger,) = await group_with_members(db, organisation, 1)
    facilitator = await make_facilitator(db, organisation)
    await assign(db, mine, facilitator)
    my_session, their_session = await make_session(db, mine), await make_session(db, theirs)
    me = principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator)

    recorded = await mutate(gql, register(my_session, [(member, "PRESENT")]), me)
    before = await row_counts(db)
    refused = await mutate(gql, register(their_session, [(stranger, "PRESENT")]), me)

    assert recorded["userErrors"] == []
    assert errors(refused) == [("input.sessionId", "NOT_FOUND")]
    assert await row_counts(db) == before


async def test_recording_needs_attendance_write_and_nothing_more(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group, (member,) = await group_with_members(db, organisation, 1)
    session = await make_session(db, group)
    coordinator_without = principal_for(organisation, scopes={"programme:read", "programme:write", "participants:read"})
    app = principal_for(organisation, scopes={"attendance:write"}, role=None)
    before = await row_counts(db)

    body = await gql.execute(RECORD, {"input": register(session, [(member, "PRESENT")])}, as_=coordinator_without)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert "attendance:write" in body["errors"][0]["message"]
    assert await row_counts(db) == before

    minimal = "mutation($input: RecordAttendanceInput!) { recordAttendance(input: $input) { userErrors { code } } }"
    data = await gql.data(minimal, {"input": register(session, [(member, "PRESENT")])}, as_=app)
    assert data == {"recordAttendance": {"userErrors": []}}


async def test_statement_count_does_not_grow_with_the_register(
    db: AsyncSession, gql: GraphQLClient, statement_counter: StatementCounter
) -> None:
    organisation = await make_organisation(db)
    small_group, small_people = await group_with_members(db, organisation, 3)
    large_group, large_people = await group_with_members(db, organisation, 15)
    small_session, large_session = await make_session(db, small_group), await make_session(db, large_group)
    admin = principal_for(organisation)

    statement_counter.reset()
    small = await mutate(gql, register(small_session, [(p, "PRESENT") for p in small_people]), admin)
    small_count = statement_counter.count
    statement_counter.reset()
    large = await mutate(gql, register(large_session, [(p, "PRESENT") for p in large_people]), admin)
    large_count = statement_counter.count

    assert len(small["attendance"]) == 3
    assert len(large["attendance"]) == 15
    assert small_count == large_count, (small_count, large_count)
    assert large_count <= 11, statement_counter.statements  # 11: the register's outbox event is one INSERT

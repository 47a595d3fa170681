"""registerParticipant, enrolParticipant and leaveGroup through HTTP: capacity, the waitlist, and reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import EnrolmentStatus, GroupStatus, Role
from programme_api.domain.principal import Principal

from .api import GraphQLClient, errors
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
    principal_for,
    row_counts,
)

REGISTER = """
mutation($input: RegisterParticipantInput!) {
  registerParticipant(input: $input) {
    participant { id reference preferredName contactEmail contactPhone }
    enrolment { id status }
    userErrors { field message code }
  }
}
"""
ENROL = """
mutation($input: EnrolParticipantInput!) {
  enrolParticipant(input: $input) {
    enrolment { id status version participant { id } group { id } }
    userErrors { field message code }
  }
}
"""
LEAVE = """
mutation($input: LeaveGroupInput!) {
  leaveGroup(input: $input) {
    enrolment { id status leftAt version }
    promoted { id status }
    userErrors { field message code }
  }
}
"""


async def mutate(gql: GraphQLClient, query: str, field: str, input: dict[str, Any], as_: Principal) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(query, {"input": input}, as_=as_))[field]
    return result


def input_as_answered(input: dict[str, Any], participant_id: str) -> dict[str, Any]:
    fields = ("reference", "preferredName", "contactEmail", "contactPhone")
    return {"id": participant_id} | {field: input[field] for field in fields}


# --- registerParticipant -------------------------------------------------------------------------------------


async def test_register_participant_keeps_personal_data_out_of_the_audit_log(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    input = {"reference": "AB-123", "regionId": gid(region), "preferredName": "Sam", "contactEmail": "sam@example.org",
             "contactPhone": "+44 7700 900123"}  # fmt: skip

    result = await mutate(gql, REGISTER, "registerParticipant", input, principal_for(organisation))

    assert result["userErrors"] == []
    assert result["enrolment"] is None
    assert result["participant"] == input_as_answered(input, result["participant"]["id"])
    [event] = await audit_events(db, "participant.register")
    assert event.details == {"region_id": str(region.id), "has_email": True, "has_phone": True}
    assert "Sam" not in str(event.details)


async def test_a_facilitator_registers_and_enrols_into_their_own_group(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    facilitator = await make_facilitator(db, organisation)
    await assign(db, group, facilitator)
    me = principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator)

    result = await mutate(gql, REGISTER, "registerParticipant",
                          {"reference": "NEW-1", "regionId": gid(region), "groupId": gid(group)}, me)  # fmt: skip
    seen = await gql.data("query($id: ID!) { node(id: $id) { id } }", {"id": result["participant"]["id"]}, as_=me)

    assert result["enrolment"]["status"] == "ACTIVE"
    assert seen["node"] == {"id": result["participant"]["id"]}


async def test_register_participant_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    await make_participant(db, south, reference="TAKEN")
    closed = await make_group(db, north, status=GroupStatus.CLOSED)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    before = await row_counts(db)

    cases = [
        ({"reference": "TAKEN"}, ("input.reference", "DUPLICATE")),
        ({"reference": "has space"}, ("input.reference", "INVALID")),
        ({"contactEmail": "not-an-email"}, ("input.contactEmail", "INVALID")),
        ({"contactPhone": "call me"}, ("input.contactPhone", "INVALID")),
        ({"regionId": gid(south)}, ("input.regionId", "NOT_FOUND")),
        ({"groupId": gid(closed)}, ("input.groupId", "GROUP_NOT_ACTIVE")),
    ]
    for overrides, expected in cases:
        input = {"reference": "P-1", "regionId": gid(north)} | overrides
        result = await mutate(gql, REGISTER, "registerParticipant", input, coordinator)
        assert errors(result) == [expected], overrides
        assert result["participant"] is None

    assert await row_counts(db) == before


async def test_registering_needs_participants_write(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    reader = principal_for(organisation, scopes={"programme:read", "participants:read", "programme:write"})
    before = await row_counts(db)

    body = await gql.execute(REGISTER, {"input": {"reference": "P-9", "regionId": gid(region)}}, as_=reader)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert "participants:write" in error["message"]
    assert await row_counts(db) == before


# --- enrolParticipant ----------------------------------------------------------------------------------------


async def test_enrolments_beyond_capacity_are_waitlisted(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=2)
    people = [await make_participant(db, region) for _ in range(3)]
    admin = principal_for(organisation)

    statuses = []
    for person in people:
        result = await mutate(gql, ENROL, "enrolParticipant", {"participantId": gid(person), "groupId": gid(group)},
                              admin)  # fmt: skip
        assert result["enrolment"]["participant"] == {"id": gid(person)}
        statuses.append(result["enrolment"]["status"])

    assert statuses == ["ACTIVE", "ACTIVE", "WAITLISTED"]
    assert [event.details["status"] for event in await audit_events(db, "enrolment.create")] == [
        "active", "active", "waitlisted"
    ]  # fmt: skip


async def test_enrol_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    paused = await make_group(db, region, status=GroupStatus.PAUSED)
    member = await make_participant(db, region)
    await enrol(db, member, group)
    newcomer = await make_participant(db, region)
    foreign = await make_participant(db, await make_region(db, other))
    admin = principal_for(organisation)
    before = await row_counts(db)

    cases = [
        (member, group, ("input.participantId", "DUPLICATE")),
        (newcomer, paused, ("input.groupId", "GROUP_NOT_ACTIVE")),
        (foreign, group, ("input.participantId", "NOT_FOUND")),
    ]
    for participant, target, expected in cases:
        input = {"participantId": gid(participant), "groupId": gid(target)}
        result = await mutate(gql, ENROL, "enrolParticipant", input, admin)
        assert errors(result) == [expected], expected
        assert result["enrolment"] is None

    assert await row_counts(db) == before


async def test_coming_back_after_leaving_reopens_the_enrolment(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region)
    old = await enrol(db, participant, group, EnrolmentStatus.LEFT)

    result = await mutate(gql, ENROL, "enrolParticipant", {"participantId": gid(participant), "groupId": gid(group)},
                          principal_for(organisation))  # fmt: skip

    assert result["enrolment"]["id"] == gid(old)
    assert result["enrolment"]["status"] == "ACTIVE"
    assert result["enrolment"]["version"] == 2


# --- leaveGroup ----------------------------------------------------------------------------------------------


async def test_leaving_promotes_the_earliest_waitlisted_enrolment(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=1)
    leaving = await enrol(db, await make_participant(db, region), group)
    later = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)
    earlier = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)
    earlier.requested_at = datetime.now(UTC) - timedelta(days=3)
    await db.flush()

    result = await mutate(gql, LEAVE, "leaveGroup", {"enrolmentId": gid(leaving), "version": 1},
                          principal_for(organisation))  # fmt: skip

    assert result["userErrors"] == []
    assert result["enrolment"]["status"] == "LEFT"
    assert result["enrolment"]["leftAt"] is not None
    assert result["promoted"] == [{"id": gid(earlier), "status": "ACTIVE"}]
    await db.refresh(later)
    assert later.status is EnrolmentStatus.WAITLISTED
    assert [event.target_id for event in await audit_events(db, "enrolment.promote")] == [str(earlier.id)]


async def test_leaving_the_waitlist_promotes_no_one(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=1)
    await enrol(db, await make_participant(db, region), group)
    waiting = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)
    other = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)

    result = await mutate(gql, LEAVE, "leaveGroup", {"enrolmentId": gid(waiting), "version": 1},
                          principal_for(organisation))  # fmt: skip

    assert result["promoted"] == []
    await db.refresh(other)
    assert other.status is EnrolmentStatus.WAITLISTED


async def test_leave_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    group = await make_group(db, north)
    gone = await enrol(db, await make_participant(db, north), group, EnrolmentStatus.LEFT)
    active = await enrol(db, await make_participant(db, north), group)
    southern = await enrol(db, await make_participant(db, south), await make_group(db, south))
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    before = await row_counts(db)

    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"enrolmentId": gid(gone)}, ("input.enrolmentId", "INVALID_STATE")),
        ({"enrolmentId": gid(active), "version": 2}, ("input.version", "CONFLICT")),
        ({"enrolmentId": gid(southern)}, ("input.enrolmentId", "NOT_FOUND")),
    ]
    for overrides, expected in cases:
        result = await mutate(gql, LEAVE, "leaveGroup", {"version": 1} | overrides, coordinator)
        assert errors(result) == [expected], overrides

    assert await row_counts(db) == before


async def test_a_resent_leave_replays_its_answer(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=1)
    leaving = await enrol(db, await make_participant(db, region), group)
    waiting = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)
    admin = principal_for(organisation)
    input = {"enrolmentId": gid(leaving), "version": 1, "idempotencyKey": "leave-1"}

    first = await mutate(gql, LEAVE, "leaveGroup", input, admin)
    counted = await row_counts(db)
    again = await mutate(gql, LEAVE, "leaveGroup", input, admin)

    assert again == first
    assert first["promoted"] == [{"id": gid(waiting), "status": "ACTIVE"}]
    assert await row_counts(db) == counted

"""A coordinator's day-to-day through HTTP: finding participants, rosters and waitlists, corrections, one-off
sessions, who facilitated, completing a session, the register as CSV, and no register before the start."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AttendanceStatus, EnrolmentStatus, Role, SessionStatus

from .api import GraphQLClient, TokenBook
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
    record,
)

FIND = """query($filter: ParticipantFilter) { participants(filter: $filter, first: 50)
  { totalCount nodes { reference } } }"""


async def references(gql: GraphQLClient, filter: dict[str, Any], as_: Any) -> list[str]:
    data = await gql.data(FIND, {"filter": filter}, as_=as_)
    return [node["reference"] for node in data["participants"]["nodes"]]


async def test_participants_are_found_by_search_group_status_and_absences(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    group = await make_group(db, north, capacity=1)
    ann = await make_participant(db, north, reference="ANN-1", preferred_name="Annie")
    bo = await make_participant(db, north, reference="BO-2", preferred_name="Bo")
    await make_participant(db, south, reference="CY-3", preferred_name="Cyrus Ann")
    await enrol(db, ann, group)
    await enrol(db, bo, group, EnrolmentStatus.WAITLISTED)
    marks = (AttendanceStatus.PRESENT, AttendanceStatus.UNEXCUSED, AttendanceStatus.EXCUSED)
    for status in marks:  # sessions start one minute apart, in this order
        await record(db, await make_session(db, group), ann, status)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    admin = principal_for(organisation)

    assert await references(gql, {"search": "ann"}, admin) == ["ANN-1", "CY-3"]  # reference or name, any case
    assert await references(gql, {"search": "ann"}, coordinator) == ["ANN-1"]  # never outside their regions
    assert await references(gql, {"groupId": gid(group)}, coordinator) == ["ANN-1", "BO-2"]
    assert await references(gql, {"groupId": gid(group), "enrolmentStatus": "WAITLISTED"}, coordinator) == ["BO-2"]
    assert await references(gql, {"consecutiveAbsencesAtLeast": 2}, coordinator) == ["ANN-1"]
    assert await references(gql, {"consecutiveAbsencesAtLeast": 3}, coordinator) == []
    assert await references(gql, {"search": "%"}, admin) == []  # wildcards are plain characters
    body = await gql.execute(FIND, {"filter": {"consecutiveAbsencesAtLeast": -1}}, as_=admin)
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


async def test_roster_and_waitlist_in_order(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=2)
    people = [await make_participant(db, region, reference=f"R-{n}") for n in range(5)]
    for person, status in zip(people, ["active", "active", "waitlisted", "waitlisted", "left"], strict=True):
        await enrol(db, person, group, EnrolmentStatus(status))
    query = """query($id: ID!) { node(id: $id) { ... on Group { roster { status participant { reference } }
      waitlist { status participant { reference } } } } }"""
    group_view = (await gql.data(query, {"id": gid(group)}, as_=principal_for(organisation)))["node"]
    assert [e["participant"]["reference"] for e in group_view["roster"]] == ["R-0", "R-1"]
    assert [e["participant"]["reference"] for e in group_view["waitlist"]] == ["R-2", "R-3"]
    assert {e["status"] for e in group_view["waitlist"]} == {"WAITLISTED"}
    programme_only = principal_for(organisation, scopes={"programme:read"})
    body = await gql.execute(query, {"id": gid(group)}, as_=programme_only)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


UPDATE = """mutation($input: UpdateParticipantInput!) { updateParticipant(input: $input)
  { userErrors { field code } participant { preferredName contactEmail contactPhone version } } }"""


async def test_a_participants_contact_details_are_corrected(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    person = await make_participant(db, region, contact_phone="+44 7700 900123")
    admin = principal_for(organisation)
    changes = {"participantId": gid(person), "version": 1, "contactEmail": "new@example.org", "contactPhone": ""}
    result = (await gql.data(UPDATE, {"input": changes}, as_=admin))["updateParticipant"]
    assert result["userErrors"] == []
    assert result["participant"]["contactEmail"] == "new@example.org"
    assert (result["participant"]["contactPhone"], result["participant"]["version"]) == (None, 2)
    stale = await gql.data(UPDATE, {"input": changes | {"contactEmail": "x@example.org"}}, as_=admin)
    assert [e["code"] for e in stale["updateParticipant"]["userErrors"]] == ["CONFLICT"]
    bad = {"participantId": gid(person), "version": 2, "contactEmail": "not an email"}
    refused = (await gql.data(UPDATE, {"input": bad}, as_=admin))["updateParticipant"]
    assert refused["userErrors"] == [{"field": "input.contactEmail", "code": "INVALID"}]
    (event,) = await audit_events(db, "participant.update")
    assert event.details == {"changed": ["contact_email", "contact_phone"]}


SESSION_FIELDS = "userErrors { field code } session { id status version facilitatorsPresent { displayName } }"


async def test_one_off_session_its_facilitators_and_completion(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    lead, other = await make_facilitator(db, organisation, display_name="Lee"), await make_facilitator(db, organisation)
    await assign(db, group, lead)
    admin = principal_for(organisation)
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    create = f"mutation($input: CreateSessionInput!) {{ createSession(input: $input) {{ {SESSION_FIELDS} }} }}"
    made = (await gql.data(create, {"input": {"groupId": gid(group), "startsAt": starts.isoformat(),
                                              "endsAt": (starts + timedelta(hours=1)).isoformat()}},
                           as_=admin))["createSession"]  # fmt: skip
    assert made["userErrors"] == []
    assert made["session"]["status"] == "SCHEDULED"
    session_id = made["session"]["id"]
    again = await gql.data(create, {"input": {"groupId": gid(group), "startsAt": starts.isoformat(),
                                              "endsAt": (starts + timedelta(hours=1)).isoformat()}}, as_=admin)  # fmt: skip
    assert again["createSession"]["userErrors"] == [{"field": "input.startsAt", "code": "DUPLICATE"}]

    present = f"mutation($input: SetSessionFacilitatorsInput!) {{ setSessionFacilitators(input: $input) {{ {SESSION_FIELDS} }} }}"  # fmt: skip
    refused = await gql.data(present, {"input": {"sessionId": session_id, "version": 1,
                                                 "facilitatorIds": [gid(other)]}}, as_=admin)  # fmt: skip
    assert refused["setSessionFacilitators"]["userErrors"] == [{"field": "input.facilitatorIds.0", "code": "INVALID"}]
    done = (await gql.data(present, {"input": {"sessionId": session_id, "version": 1,
                                               "facilitatorIds": [gid(lead)]}}, as_=admin))["setSessionFacilitators"]  # fmt: skip
    assert done["session"]["facilitatorsPresent"] == [{"displayName": "Lee"}]

    complete = f"mutation($input: CompleteSessionInput!) {{ completeSession(input: $input) {{ {SESSION_FIELDS} }} }}"
    held = await gql.data(complete, {"input": {"sessionId": session_id, "version": 2}}, as_=admin)
    assert held["completeSession"]["session"]["status"] == "HELD"
    future = await make_session(db, group, status=SessionStatus.SCHEDULED,
                                starts_at=datetime.now(UTC) + timedelta(days=2))  # fmt: skip
    early = await gql.data(complete, {"input": {"sessionId": gid(future), "version": 1}}, as_=admin)
    assert early["completeSession"]["userErrors"] == [{"field": "input.sessionId", "code": "NOT_STARTED"}]


async def test_a_register_is_refused_before_the_session_starts(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    person = await make_participant(db, region)
    await enrol(db, person, group)
    future = await make_session(db, group, status=SessionStatus.SCHEDULED,
                                starts_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    mutation = """mutation($input: RecordAttendanceInput!) { recordAttendance(input: $input)
      { userErrors { field code } } }"""
    entries = [{"participantId": gid(person), "status": "PRESENT"}]
    result = await gql.data(mutation, {"input": {"sessionId": gid(future), "version": 1, "entries": entries}},
                            as_=principal_for(organisation))  # fmt: skip
    assert result["recordAttendance"]["userErrors"] == [{"field": "input.sessionId", "code": "NOT_STARTED"}]
    assert await audit_events(db, "session.record_attendance") == []


async def test_the_register_as_csv_follows_the_access_rules_and_is_audited(
    db: AsyncSession, http: tuple[httpx.AsyncClient, TokenBook]
) -> None:
    client, tokens = http
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    group = await make_group(db, north)
    ann = await make_participant(db, north, reference="A-1", preferred_name="=Ann")
    bo = await make_participant(db, north, reference="B-2", preferred_name="Bo")
    await enrol(db, ann, group)
    await enrol(db, bo, group)
    meeting = await make_session(db, group)
    await record(db, meeting, ann, AttendanceStatus.PRESENT)
    await db.commit()

    def get(principal: Any) -> Any:
        token = tokens.issue(principal)
        return client.get(f"/exports/registers/{gid(meeting)}.csv", headers={"Authorization": f"Bearer {token}"})

    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    response = await get(coordinator)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["reference", "preferred_name", "enrolment_status", "attendance"],
        ["A-1", "'=Ann", "active", "present"],
        ["B-2", "Bo", "active", ""],
    ]
    (event, *_) = [e for e in await audit_events(db, "register.exported") if e.target_type == "Participant"]
    assert event.details["count"] == 2
    assert event.details["fields"] == ["preferred_name", "reference"]
    other_region = principal_for(organisation, role=Role.COORDINATOR, regions=[south])
    assert (await get(other_region)).status_code == 404
    assert (await get(principal_for(organisation, scopes={"programme:read"}))).status_code == 403
    assert (await get(principal_for(await make_organisation(db)))).status_code == 404

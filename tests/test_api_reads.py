"""Reads through HTTP: lists, nesting, node lookups, filters, paging, roll-ups, and who may see what."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import AttendanceStatus, GroupStatus, Role, SessionStatus, Topic
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import (
    assign,
    enrol,
    make_facilitator,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    make_session,
    principal_for,
    record,
)

DASHBOARD = """
query Dashboard {
  regions(first: 1) { totalCount edges { node { name groups(first: 10) { totalCount edges { node {
    name facilitators { role facilitator { displayName } }
    sessions(last: 20) { edges { node { startsAt status attendanceCounts { present excused unexcused dropins } } } }
  } } } } } }
}
"""


async def build_region_with_groups(db: AsyncSession, organisation, groups: int, sessions: int):  # type: ignore[no-untyped-def]
    region = await make_region(db, organisation)
    for _ in range(groups):
        group = await make_group(db, region)
        await assign(db, group, await make_facilitator(db, organisation))
        participant = await make_participant(db, region)
        for _ in range(sessions):
            session = await make_session(db, group)
            await record(db, session, participant, AttendanceStatus.PRESENT)
    return region


async def test_region_dashboard_returns_nested_data(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    await build_region_with_groups(db, organisation, groups=2, sessions=3)
    data = await gql.data(DASHBOARD, as_=principal_for(organisation))
    regions = data["regions"]["edges"]
    assert data["regions"]["totalCount"] == 1
    groups = regions[0]["node"]["groups"]
    assert groups["totalCount"] == 2
    first_group = groups["edges"][0]["node"]
    assert first_group["facilitators"][0]["role"] == "LEAD"
    assert len(first_group["sessions"]["edges"]) == 3
    assert first_group["sessions"]["edges"][0]["node"]["attendanceCounts"] == {
        "present": 1, "excused": 0, "unexcused": 0, "dropins": 0,
    }  # fmt: skip


async def test_statement_count_does_not_grow_with_list_sizes(
    db: AsyncSession, gql: GraphQLClient, statement_counter
) -> None:  # type: ignore[no-untyped-def]
    small_org = await make_organisation(db)
    await build_region_with_groups(db, small_org, groups=1, sessions=2)
    large_org = await make_organisation(db)
    await build_region_with_groups(db, large_org, groups=10, sessions=20)

    statement_counter.reset()
    await gql.data(DASHBOARD, as_=principal_for(small_org))
    small = statement_counter.count
    statement_counter.reset()
    data = await gql.data(DASHBOARD, as_=principal_for(large_org))
    large = statement_counter.count
    assert len(data["regions"]["edges"][0]["node"]["groups"]["edges"]) == 10
    assert small == large, (small, large)
    # regions page + count, groups page + count, assignments, facilitators, sessions page, attendance counts;
    # PostgreSQL adds the row-level-security binding.
    assert large <= 9, large


async def test_other_organisations_rows_are_unreachable_by_every_path(db: AsyncSession, gql: GraphQLClient) -> None:
    mine, theirs = await make_organisation(db), await make_organisation(db)
    my_region = await make_region(db, mine)
    their_region = await make_region(db, theirs)
    their_group = await make_group(db, their_region)
    their_session = await make_session(db, their_group)
    their_participant = await make_participant(db, their_region)
    me = principal_for(mine)

    data = await gql.data("{ groups { totalCount } sessions { totalCount } participants { totalCount } "
                          "regions { totalCount } }", as_=me)  # fmt: skip
    assert data == {"groups": {"totalCount": 0}, "sessions": {"totalCount": 0}, "participants": {"totalCount": 0},
                    "regions": {"totalCount": 1}}  # fmt: skip
    ids = [to_global_id(name, row.id) for name, row in (
        ("Group", their_group), ("GroupSession", their_session), ("Participant", their_participant),
        ("Region", their_region), ("Organisation", theirs))]  # fmt: skip
    data = await gql.data("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, as_=me)
    assert data["nodes"] == [None] * len(ids)
    filtered = await gql.data(
        "query($r: [ID!]) { groups(filter: {regionIds: $r}) { totalCount } }",
        {"r": [to_global_id("Region", their_region.id)]},
        as_=me,
    )
    assert filtered["groups"]["totalCount"] == 0
    own = await gql.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": to_global_id("Region", my_region.id)}, as_=me
    )
    assert own["node"] == {"id": to_global_id("Region", my_region.id)}


async def test_region_bound_coordinator_sees_only_their_regions(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    north_group, south_group = await make_group(db, north), await make_group(db, south)
    await make_session(db, north_group)
    south_session = await make_session(db, south_group)
    facilitator = await make_facilitator(db, organisation)
    await assign(db, north_group, facilitator)
    await assign(db, south_group, facilitator)
    coordinator = principal_for(organisation, regions=[north], role=Role.COORDINATOR)

    data = await gql.data(
        "{ regions { edges { node { name } } } groups { edges { node { name } } } sessions { totalCount } "
        "facilitators { edges { node { assignments { group { name } } } } } }",
        as_=coordinator,
    )
    assert [e["node"]["name"] for e in data["regions"]["edges"]] == [north.name]
    assert [e["node"]["name"] for e in data["groups"]["edges"]] == [north_group.name]
    assert data["sessions"]["totalCount"] == 1
    assert data["facilitators"]["edges"][0]["node"]["assignments"] == [{"group": {"name": north_group.name}}]
    hidden = await gql.data("query($id: ID!) { node(id: $id) { id } }",
                            {"id": to_global_id("GroupSession", south_session.id)}, as_=coordinator)  # fmt: skip
    assert hidden["node"] is None


async def test_participants_need_the_participants_read_scope(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_participant(db, region)
    reader = principal_for(organisation, scopes={"programme:read"})
    body = await gql.execute("{ participants { totalCount } }", as_=reader)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert "participants:read" in body["errors"][0]["message"]


async def test_keyset_paging_walks_forward_and_backward(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    names = [f"Group {letter}" for letter in "ABCDE"]
    for name in names:
        await make_group(db, region, name=name)
    me = principal_for(organisation)
    query = """query($first: Int, $after: String, $last: Int, $before: String) {
      groups(first: $first, after: $after, last: $last, before: $before) {
        totalCount edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage endCursor startCursor } } }"""
    page1 = (await gql.data(query, {"first": 2}, as_=me))["groups"]
    assert [e["node"]["name"] for e in page1["edges"]] == names[:2]
    assert page1["pageInfo"]["hasNextPage"] is True
    assert page1["totalCount"] == 5
    page2 = (await gql.data(query, {"first": 2, "after": page1["pageInfo"]["endCursor"]}, as_=me))["groups"]
    assert [e["node"]["name"] for e in page2["edges"]] == names[2:4]
    tail = (await gql.data(query, {"last": 2}, as_=me))["groups"]
    assert [e["node"]["name"] for e in tail["edges"]] == names[3:]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    before = (await gql.data(query, {"last": 2, "before": tail["pageInfo"]["startCursor"]}, as_=me))["groups"]
    assert [e["node"]["name"] for e in before["edges"]] == names[1:3]
    too_many = await gql.execute("{ groups(first: 101) { totalCount } }", as_=me)
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID"
    bad_cursor = await gql.execute('{ groups(after: "nonsense") { totalCount } }', as_=me)
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID"


async def test_group_filters(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_group(db, region, name="Burnout Circle", topic=Topic.BURNOUT)
    await make_group(db, region, name="Anxiety 100% Club", topic=Topic.ANXIETY, status=GroupStatus.PAUSED)
    me = principal_for(organisation)
    query = "query($f: GroupFilter) { groups(filter: $f) { edges { node { name } } } }"

    async def names(where: dict) -> list[str]:  # type: ignore[type-arg]
        data = await gql.data(query, {"f": where}, as_=me)
        return [e["node"]["name"] for e in data["groups"]["edges"]]

    assert await names({"topics": ["BURNOUT"]}) == ["Burnout Circle"]
    assert await names({"statuses": ["PAUSED"]}) == ["Anxiety 100% Club"]
    assert await names({"search": "circle"}) == ["Burnout Circle"]
    assert await names({"search": "100%"}) == ["Anxiety 100% Club"]
    assert await names({"search": "%"}) == ["Anxiety 100% Club"]


async def test_rollups(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    alice, bob = await make_participant(db, region), await make_participant(db, region)
    await enrol(db, alice, group)
    start = datetime(2026, 5, 6, 18, tzinfo=UTC)
    statuses = [
        (AttendanceStatus.PRESENT, AttendanceStatus.PRESENT),
        (AttendanceStatus.UNEXCUSED, AttendanceStatus.PRESENT),
        (AttendanceStatus.EXCUSED, AttendanceStatus.UNEXCUSED),
    ]
    for week, (alice_status, bob_status) in enumerate(statuses):
        session = await make_session(db, group, starts_at=start + timedelta(weeks=week))
        await record(db, session, alice, alice_status)
        await record(db, session, bob, bob_status)
    await make_session(db, group, starts_at=start + timedelta(weeks=4), status=SessionStatus.CANCELLED,
                       cancellation_reason="Venue closed")  # fmt: skip
    me = principal_for(organisation)
    data = await gql.data(
        """query($from: DateTime, $to: DateTime) {
          regions { edges { node { totals(from: $from, to: $to) { activeGroups sessionsHeld uniqueAttendees }
            groups { edges { node { attendanceRate(from: $from, to: $to) } } } } } }
          participants { edges { node { reference consecutiveAbsences } } } }""",
        {"from": "2026-05-01T00:00:00Z", "to": "2026-06-30T00:00:00Z"},
        as_=me,
    )
    region_node = data["regions"]["edges"][0]["node"]
    assert region_node["totals"] == {"activeGroups": 1, "sessionsHeld": 3, "uniqueAttendees": 2}
    assert region_node["groups"]["edges"][0]["node"]["attendanceRate"] == round(3 / 6, 4)
    absences = {e["node"]["reference"]: e["node"]["consecutiveAbsences"] for e in data["participants"]["edges"]}
    assert absences == {alice.reference: 2, bob.reference: 1}


async def test_facilitator_compliance_filter(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    today = date.today()
    await make_facilitator(
        db, organisation, display_name="Expired", background_check_expires_on=today - timedelta(days=1)
    )
    await make_facilitator(
        db, organisation, display_name="Soon", background_check_expires_on=today + timedelta(days=10)
    )
    await make_facilitator(db, organisation, display_name="Fine")
    await make_facilitator(db, organisation, display_name="Untrained", training_completed_on=None)
    me = principal_for(organisation)
    query = "query($c: ComplianceState, $d: Int!) { facilitators(compliance: $c, withinDays: $d) { edges { node { displayName complianceState } } } }"

    async def names(state: str | None, days: int = 30) -> list[str]:
        data = await gql.data(query, {"c": state, "d": days}, as_=me)
        return [e["node"]["displayName"] for e in data["facilitators"]["edges"]]

    assert await names("CHECK_EXPIRED") == ["Expired"]
    assert await names("CHECK_EXPIRING") == ["Soon"]
    assert await names("CHECK_EXPIRING", 5) == []
    assert await names("TRAINING_MISSING") == ["Untrained"]
    assert await names("COMPLIANT") == ["Fine"]


async def test_node_reads_of_health_data_are_audited_and_scoped(db: AsyncSession, gql: GraphQLClient) -> None:
    from .factories import audit_events, make_response

    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    participant = await make_participant(db, region)
    response = await make_response(db, participant, group)
    query = "query($id: ID!) { node(id: $id) { id ... on SurveyResponse { timepoint score } } }"
    variables = {"id": to_global_id("SurveyResponse", response.id)}

    before = len(await audit_events(db, "SurveyResponse.read"))
    data = await gql.data(query, variables, as_=principal_for(organisation))
    assert data["node"]["id"] == variables["id"]
    assert len(await audit_events(db, "SurveyResponse.read")) == before + 1

    outsider = principal_for(await make_organisation(db))
    assert (await gql.data(query, variables, as_=outsider))["node"] is None
    no_scope = await gql.execute(query, variables, as_=principal_for(organisation, scopes={"programme:read"}))
    assert no_scope["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert len(await audit_events(db, "SurveyResponse.read")) == before + 1

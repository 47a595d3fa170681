"""Writes to regions and groups through HTTP, and what every write shares: scopes, reach, versions,
idempotency keys and the audit trail."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain import idempotency
from programme_api.domain.models import EnrolmentStatus, Group, Region, Role
from programme_api.domain.principal import Principal
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
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

CREATE_REGION = """
mutation($input: CreateRegionInput!) {
  createRegion(input: $input) { region { id slug name version } userErrors { field message code } }
}
"""
UPDATE_REGION = """
mutation($input: UpdateRegionInput!) {
  updateRegion(input: $input) { region { id slug name version } userErrors { field message code } }
}
"""
CREATE_GROUP = """
mutation($input: CreateGroupInput!) {
  createGroup(input: $input) {
    group { id name topic deliveryMode venue capacity status version region { id } }
    userErrors { field message code }
  }
}
"""
UPDATE_GROUP = """
mutation($input: UpdateGroupInput!) {
  updateGroup(input: $input) {
    group { id name topic deliveryMode venue capacity status version }
    userErrors { field message code }
  }
}
"""


async def mutate(gql: GraphQLClient, query: str, field: str, input: dict[str, Any], as_: Principal) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(query, {"input": input}, as_=as_))[field]
    return result


def group_input(region: Region, **overrides: Any) -> dict[str, Any]:
    values = {"regionId": gid(region), "name": "Tuesday evening", "topic": "ANXIETY", "deliveryMode": "IN_PERSON",
              "venue": "Library", "capacity": 10}  # fmt: skip
    return values | overrides


def gid_of(type_name: str, raw_id: str | None) -> str:
    assert raw_id is not None
    return str(to_global_id(type_name, uuid.UUID(raw_id)))


# --- regions -------------------------------------------------------------------------------------------------


async def test_create_region_answers_it_and_audits(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    admin = principal_for(organisation)

    result = await mutate(gql, CREATE_REGION, "createRegion", {"slug": "north-east", "name": " North East "}, admin)

    assert result["userErrors"] == []
    assert result["region"]["slug"] == "north-east"
    assert result["region"]["name"] == "North East"
    assert result["region"]["version"] == 1
    [event] = await audit_events(db, "region.create")
    assert (event.actor_id, event.actor_type, event.target_type) == (admin.actor_id, admin.actor_type, "Region")
    assert event.organisation_id == organisation.id


async def test_create_region_refusals(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    existing = await make_region(db, organisation, slug="taken")
    before = await row_counts(db)

    duplicate = await mutate(gql, CREATE_REGION, "createRegion", {"slug": "taken", "name": "X"},
                             principal_for(organisation))  # fmt: skip
    invalid = await mutate(gql, CREATE_REGION, "createRegion", {"slug": "Not A Slug", "name": "X"},
                           principal_for(organisation))  # fmt: skip
    bound = principal_for(organisation, role=Role.COORDINATOR, regions=[existing])
    forbidden = await mutate(gql, CREATE_REGION, "createRegion", {"slug": "new", "name": "X"}, bound)

    assert duplicate["userErrors"] == [{"field": "input.slug", "code": "DUPLICATE",
                                        "message": "the organisation already has a region 'taken'"}]  # fmt: skip
    assert [(e["field"], e["code"]) for e in invalid["userErrors"]] == [("input.slug", "INVALID")]
    assert [(e["field"], e["code"]) for e in forbidden["userErrors"]] == [(None, "FORBIDDEN")]
    assert duplicate["region"] is None
    assert await row_counts(db) == before


async def test_update_region_bumps_version_and_refuses_a_stale_one(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    admin = principal_for(organisation)

    first = await mutate(gql, UPDATE_REGION, "updateRegion", {"regionId": gid(region), "version": 1, "name": "Renamed"},
                         admin)  # fmt: skip
    before = await row_counts(db)
    stale = await mutate(gql, UPDATE_REGION, "updateRegion", {"regionId": gid(region), "version": 1, "name": "Lost"},
                         admin)  # fmt: skip

    assert first["region"]["name"] == "Renamed"
    assert first["region"]["version"] == 2
    assert stale["region"] is None
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [("input.version", "CONFLICT")]
    assert await row_counts(db) == before
    await db.refresh(region)
    assert (region.name, region.version) == ("Renamed", 2)


async def test_regions_out_of_reach_cannot_be_updated(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    mine, theirs = await make_region(db, organisation), await make_region(db, organisation)
    foreign = await make_region(db, other)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[mine])
    before = await row_counts(db)

    for region, caller in ((theirs, coordinator), (foreign, principal_for(organisation))):
        input = {"regionId": gid(region), "version": 1, "name": "Mine now"}
        result = await mutate(gql, UPDATE_REGION, "updateRegion", input, caller)
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("input.regionId", "NOT_FOUND")]

    assert await row_counts(db) == before


# --- groups --------------------------------------------------------------------------------------------------


async def test_create_group_in_a_region_answers_the_group(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[region])

    result = await mutate(gql, CREATE_GROUP, "createGroup", group_input(region), coordinator)

    assert result["userErrors"] == []
    group = result["group"]
    assert group == {"id": group["id"], "name": "Tuesday evening", "topic": "ANXIETY", "deliveryMode": "IN_PERSON",
                     "venue": "Library", "capacity": 10, "status": "ACTIVE", "version": 1,
                     "region": {"id": gid(region)}}  # fmt: skip
    [event] = await audit_events(db, "group.create")
    assert gid_of("Group", event.target_id) == group["id"]
    assert event.details == {"region_id": str(region.id)}


async def test_create_group_validation_errors_name_the_field(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    admin = principal_for(organisation)
    before = await row_counts(db)

    for overrides, field in (({"capacity": 0}, "input.capacity"), ({"name": "  "}, "input.name"),
                             ({"venue": "x" * 301}, "input.venue")):  # fmt: skip
        result = await mutate(gql, CREATE_GROUP, "createGroup", group_input(region, **overrides), admin)
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [(field, "INVALID")], overrides

    assert await row_counts(db) == before


async def test_groups_cannot_be_created_in_other_regions_or_organisations(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    mine, theirs = await make_region(db, organisation), await make_region(db, organisation)
    foreign = await make_region(db, other)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[mine])
    before = await row_counts(db)

    out_of_region = await mutate(gql, CREATE_GROUP, "createGroup", group_input(theirs), coordinator)
    foreign_org = await mutate(gql, CREATE_GROUP, "createGroup", group_input(foreign), principal_for(organisation))
    malformed = await mutate(gql, CREATE_GROUP, "createGroup", group_input(mine, regionId="nonsense"), coordinator)

    for result in (out_of_region, foreign_org, malformed):
        assert result["group"] is None
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("input.regionId", "NOT_FOUND")]
    assert out_of_region["userErrors"][0]["message"] == foreign_org["userErrors"][0]["message"]
    assert await row_counts(db) == before


async def test_missing_write_scope_is_a_top_level_error_and_writes_nothing(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    reader = principal_for(organisation, scopes={"programme:read", "participants:write"})
    before = await row_counts(db)

    body = await gql.execute(CREATE_GROUP, {"input": group_input(region, idempotencyKey="k1")}, as_=reader)

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert "programme:write" in error["message"]
    assert await row_counts(db) == before


async def test_write_scope_alone_is_enough_to_write(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    writer = principal_for(organisation, scopes={"programme:write"}, role=None)

    query = "mutation($input: CreateGroupInput!) { createGroup(input: $input) { group { name } userErrors { code } } }"
    result = await mutate(gql, query, "createGroup", group_input(region), writer)

    assert result == {"group": {"name": "Tuesday evening"}, "userErrors": []}
    assert len(await audit_events(db, "group.create")) == 1


async def test_update_group_changes_only_given_fields(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation), venue="Hall")
    admin = principal_for(organisation)

    renaming = {"groupId": gid(group), "version": 1, "name": "Renamed", "status": "PAUSED"}
    clearing = {"groupId": gid(group), "version": 2, "venue": None, "deliveryMode": "ONLINE"}
    renamed = await mutate(gql, UPDATE_GROUP, "updateGroup", renaming, admin)
    cleared = await mutate(gql, UPDATE_GROUP, "updateGroup", clearing, admin)

    assert renamed["group"]["name"] == "Renamed"
    assert renamed["group"]["status"] == "PAUSED"
    assert renamed["group"]["venue"] == "Hall"
    assert cleared["group"] | {"id": None} == {"id": None, "name": "Renamed", "topic": "DEPRESSION",
                                              "deliveryMode": "ONLINE", "venue": None, "capacity": 12,
                                              "status": "PAUSED", "version": 3}  # fmt: skip
    events = await audit_events(db, "group.update")
    assert [event.details for event in events] == [{"changed": ["name", "status"]},
                                                  {"changed": ["delivery_mode", "venue"]}]  # fmt: skip


async def test_update_group_with_a_stale_version_is_a_conflict(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    admin = principal_for(organisation)
    await mutate(gql, UPDATE_GROUP, "updateGroup", {"groupId": gid(group), "version": 1, "capacity": 20}, admin)
    before = await row_counts(db)

    stale = await mutate(gql, UPDATE_GROUP, "updateGroup", {"groupId": gid(group), "version": 1, "capacity": 5}, admin)

    assert stale["group"] is None
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [("input.version", "CONFLICT")]
    assert await row_counts(db) == before
    await db.refresh(group)
    assert (group.capacity, group.version) == (20, 2)


async def test_raising_capacity_promotes_from_the_waitlist(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region, capacity=1)
    await enrol(db, await make_participant(db, region), group)
    waiting = await enrol(db, await make_participant(db, region), group, EnrolmentStatus.WAITLISTED)

    await mutate(gql, UPDATE_GROUP, "updateGroup", {"groupId": gid(group), "version": 1, "capacity": 2},
                 principal_for(organisation))  # fmt: skip

    await db.refresh(waiting)
    assert waiting.status is EnrolmentStatus.ACTIVE
    assert [event.target_id for event in await audit_events(db, "enrolment.promote")] == [str(waiting.id)]


async def test_facilitators_cannot_change_groups(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    facilitator = await make_facilitator(db, organisation)
    await assign(db, group, facilitator)
    me = principal_for(organisation, role=Role.FACILITATOR, facilitator=facilitator)
    before = await row_counts(db)

    body = await gql.execute(UPDATE_GROUP, {"input": {"groupId": gid(group), "version": 1, "name": "Mine"}}, as_=me)

    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert await row_counts(db) == before


# --- idempotency keys ----------------------------------------------------------------------------------------


async def test_resending_with_the_same_key_returns_the_first_result_without_writing(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    admin = principal_for(organisation)
    input = group_input(region, idempotencyKey="phone-42")

    first = await mutate(gql, CREATE_GROUP, "createGroup", input, admin)
    after_first = await row_counts(db)
    again = await mutate(gql, CREATE_GROUP, "createGroup", dict(reversed(list(input.items()))), admin)

    assert again == first
    assert await row_counts(db) == after_first
    assert after_first["idempotency_records"] >= 1
    assert len(await audit_events(db, "group.create")) == 1


async def test_reusing_a_key_with_another_input_is_refused(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    admin = principal_for(organisation)
    await mutate(gql, CREATE_GROUP, "createGroup", group_input(region, idempotencyKey="phone-43"), admin)
    before = await row_counts(db)

    other_input = group_input(region, name="Other", idempotencyKey="phone-43")
    reused = await mutate(gql, CREATE_GROUP, "createGroup", other_input, admin)

    assert reused["group"] is None
    assert [(e["field"], e["code"]) for e in reused["userErrors"]] == [
        ("input.idempotencyKey", "IDEMPOTENCY_KEY_REUSED")
    ]
    assert await row_counts(db) == before


async def test_keys_belong_to_one_caller(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    input = group_input(region, idempotencyKey="shared-key")

    mine = await mutate(gql, CREATE_GROUP, "createGroup", input, principal_for(organisation))
    theirs = await mutate(gql, CREATE_GROUP, "createGroup", input, principal_for(organisation))

    assert mine["group"]["id"] != theirs["group"]["id"]


async def test_a_refused_first_attempt_does_not_burn_the_key(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    admin = principal_for(organisation)
    input = {"groupId": gid(group), "version": 7, "name": "Renamed", "idempotencyKey": "retry-me"}

    refused = await mutate(gql, UPDATE_GROUP, "updateGroup", input, admin)
    retried = await mutate(gql, UPDATE_GROUP, "updateGroup", input | {"version": 1}, admin)

    assert refused["userErrors"][0]["code"] == "CONFLICT"
    assert retried["userErrors"] == []
    assert retried["group"]["name"] == "Renamed"


async def test_a_key_is_claimed_by_one_insert_and_a_taken_key_is_replayed(
    db: AsyncSession, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call claims the key with its insert and reads nothing before it; a later call's insert finds
    the key taken (as a concurrent call's would, once the first commits) and replays the stored answer."""
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    admin = principal_for(organisation)
    input = group_input(region, idempotencyKey="race-1")
    real_claim, real_find = idempotency._claim, idempotency._find
    calls: list[tuple[str, Any]] = []

    async def claim(*args: Any) -> Any:
        claimed = await real_claim(*args)
        calls.append(("claim", claimed is not None))
        return claimed

    async def find(*args: Any) -> Any:
        calls.append(("find", args[2].key))
        return await real_find(*args)

    monkeypatch.setattr(idempotency, "_claim", claim)
    monkeypatch.setattr(idempotency, "_find", find)
    first = await mutate(gql, CREATE_GROUP, "createGroup", input, admin)
    counted = await row_counts(db)
    again = await mutate(gql, CREATE_GROUP, "createGroup", input, admin)

    assert calls == [("claim", True), ("claim", False), ("find", "race-1")]
    assert again == first
    assert await row_counts(db) == counted


async def test_a_blank_or_overlong_key_is_invalid(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    before = await row_counts(db)

    for key in ("   ", "k" * 201):
        result = await mutate(gql, CREATE_GROUP, "createGroup", group_input(region, idempotencyKey=key),
                              principal_for(organisation))  # fmt: skip
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("input.idempotencyKey", "INVALID")]

    assert await row_counts(db) == before


# --- audit ---------------------------------------------------------------------------------------------------


async def test_audit_event_carries_the_request_id(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    token = gql.tokens.issue(principal_for(organisation))

    response = await gql.http.post(
        "/graphql",
        json={"query": CREATE_GROUP, "variables": {"input": group_input(region)}},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-audit-0001"},
    )

    assert response.status_code == 200
    assert response.json()["data"]["createGroup"]["userErrors"] == []
    [event] = await audit_events(db, "group.create")
    assert event.request_id == "req-audit-0001"
    created = await db.get(Group, uuid.UUID(str(event.target_id)))
    assert created is not None
    assert created.name == "Tuesday evening"


async def test_a_write_adds_its_row_and_one_audit_event_only(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    before = await row_counts(db)

    await mutate(gql, CREATE_GROUP, "createGroup", group_input(region), principal_for(organisation))

    after = await row_counts(db)
    changed = {table: after[table] - before[table] for table in after if after[table] != before[table]}
    assert changed == {"groups": 1, "audit_events": 1}

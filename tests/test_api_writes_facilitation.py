"""assignFacilitator and unassignFacilitator through HTTP, with the compliance refusals."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import FacilitatorRole, Role
from programme_api.domain.principal import Principal

from .api import GraphQLClient, errors
from .factories import (
    assign,
    audit_events,
    gid,
    make_facilitator,
    make_group,
    make_organisation,
    make_region,
    principal_for,
    row_counts,
)

ASSIGN = """
mutation($input: AssignFacilitatorInput!) {
  assignFacilitator(input: $input) {
    assignment { role facilitator { id } group { id facilitators { role facilitator { id } } } }
    userErrors { field message code }
  }
}
"""
UNASSIGN = """
mutation($input: UnassignFacilitatorInput!) {
  unassignFacilitator(input: $input) {
    group { id facilitators { role } } facilitator { id }
    userErrors { field message code }
  }
}
"""


async def mutate(gql: GraphQLClient, query: str, field: str, input: dict[str, Any], as_: Principal) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(query, {"input": input}, as_=as_))[field]
    return result


async def test_assign_facilitator_as_lead(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    facilitator = await make_facilitator(db, organisation)

    result = await mutate(gql, ASSIGN, "assignFacilitator",
                          {"groupId": gid(group), "facilitatorId": gid(facilitator), "role": "LEAD"},
                          principal_for(organisation))  # fmt: skip

    assert result["userErrors"] == []
    assert result["assignment"] == {
        "role": "LEAD", "facilitator": {"id": gid(facilitator)},
        "group": {"id": gid(group), "facilitators": [{"role": "LEAD", "facilitator": {"id": gid(facilitator)}}]},
    }  # fmt: skip
    [event] = await audit_events(db, "facilitator.assign")
    assert event.details == {"group_id": str(group.id), "facilitator_id": str(facilitator.id), "role": "lead"}


async def test_a_check_expiring_soon_does_not_block(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    expiring = await make_facilitator(db, organisation, background_check_expires_on=date.today() + timedelta(days=3))

    result = await mutate(gql, ASSIGN, "assignFacilitator",
                          {"groupId": gid(group), "facilitatorId": gid(expiring), "role": "CO_FACILITATOR"},
                          principal_for(organisation))  # fmt: skip

    assert result["userErrors"] == []
    assert result["assignment"]["role"] == "CO_FACILITATOR"


async def test_assignment_refusals_write_nothing(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation, other = await make_organisation(db), await make_organisation(db)
    north, south = await make_region(db, organisation), await make_region(db, organisation)
    group, southern = await make_group(db, north), await make_group(db, south)
    expired = await make_facilitator(db, organisation, background_check_expires_on=date.today() - timedelta(days=1))
    unchecked = await make_facilitator(db, organisation, background_check_expires_on=None)
    untrained = await make_facilitator(db, organisation, training_completed_on=None)
    assigned = await make_facilitator(db, organisation)
    await assign(db, group, assigned)
    foreign = await make_facilitator(db, other)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[north])
    before = await row_counts(db)

    cases = [
        (group, expired, ("input.facilitatorId", "BACKGROUND_CHECK_EXPIRED")),
        (group, unchecked, ("input.facilitatorId", "BACKGROUND_CHECK_EXPIRED")),
        (group, untrained, ("input.facilitatorId", "TRAINING_INCOMPLETE")),
        (group, assigned, ("input.facilitatorId", "DUPLICATE")),
        (group, foreign, ("input.facilitatorId", "NOT_FOUND")),
        (southern, untrained, ("input.groupId", "NOT_FOUND")),
    ]
    for target, facilitator, expected in cases:
        input = {"groupId": gid(target), "facilitatorId": gid(facilitator), "role": "LEAD"}
        result = await mutate(gql, ASSIGN, "assignFacilitator", input, coordinator)
        assert errors(result) == [expected], facilitator.display_name
        assert result["assignment"] is None

    assert await row_counts(db) == before


async def test_assigning_needs_programme_write(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    facilitator = await make_facilitator(db, organisation)
    before = await row_counts(db)
    input = {"groupId": gid(group), "facilitatorId": gid(facilitator), "role": "LEAD"}
    reader = principal_for(organisation, scopes={"programme:read", "attendance:write"})

    body = await gql.execute(ASSIGN, {"input": input}, as_=reader)

    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert await row_counts(db) == before


async def test_unassign_facilitator(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    group = await make_group(db, await make_region(db, organisation))
    facilitator = await make_facilitator(db, organisation)
    await assign(db, group, facilitator, FacilitatorRole.CO_FACILITATOR)
    admin = principal_for(organisation)
    input = {"groupId": gid(group), "facilitatorId": gid(facilitator)}

    removed = await mutate(gql, UNASSIGN, "unassignFacilitator", input, admin)
    before = await row_counts(db)
    again = await mutate(gql, UNASSIGN, "unassignFacilitator", input, admin)

    assert removed == {"group": {"id": gid(group), "facilitators": []}, "facilitator": {"id": gid(facilitator)},
                       "userErrors": []}  # fmt: skip
    assert [event.details["role"] for event in await audit_events(db, "facilitator.unassign")] == ["co_facilitator"]
    assert errors(again) == [("input.facilitatorId", "NOT_FOUND")]
    assert await row_counts(db) == before

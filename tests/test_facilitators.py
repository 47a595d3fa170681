"""Facilitators as records through HTTP: created, checks and training recorded (history kept), compliance
recomputed at once, corrected, archived, and linked to a person's account that then sees its own groups."""

# ruff: noqa: F401, F811

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import Role
from programme_api.domain.principal import Principal

from .api import GraphQLClient
from .factories import assign, audit_events, gid, make_group, make_organisation, make_region, principal_for
from .oauth_support import app, bearer, make_person, person_tokens, settings, web

FACILITATOR = "id displayName version archivedAt trainingCompletedOn backgroundCheckExpiresOn complianceState"
CREATE = f"""mutation($input: CreateFacilitatorInput!) {{ createFacilitator(input: $input) {{
  facilitator {{ {FACILITATOR} }} userErrors {{ field code }} }} }}"""
UPDATE = f"""mutation($input: UpdateFacilitatorInput!) {{ updateFacilitator(input: $input) {{
  facilitator {{ {FACILITATOR} }} userErrors {{ field code }} }} }}"""
ARCHIVE = f"""mutation($input: ArchiveFacilitatorInput!) {{ archiveFacilitator(input: $input) {{
  facilitator {{ {FACILITATOR} }} userErrors {{ field code }} }} }}"""
TRAINING = f"""mutation($input: RecordTrainingInput!) {{ recordTraining(input: $input) {{
  check {{ kind completedOn expiresOn reference }} facilitator {{ {FACILITATOR} }} userErrors {{ field code }} }} }}"""
CHECK = f"""mutation($input: RecordBackgroundCheckInput!) {{ recordBackgroundCheck(input: $input) {{
  check {{ kind completedOn expiresOn reference }} facilitator {{ {FACILITATOR} }} userErrors {{ field code }} }} }}"""
COMPLIANCE = """query($state: ComplianceState) { facilitators(compliance: $state, first: 100) {
  edges { node { id } } } }"""
HISTORY = (
    """query($id: ID!) { node(id: $id) { ... on Facilitator { checks { kind completedOn expiresOn reference } } } }"""
)
ASSIGN = (
    """mutation($input: AssignFacilitatorInput!) { assignFacilitator(input: $input) { userErrors { field code } } }"""
)


def today() -> date:
    """Today when the test runs (a module constant would be yesterday for a run that crosses midnight)."""
    return date.today()


async def ids_in(gql: GraphQLClient, state: str, as_: Principal) -> set[str]:
    data = await gql.data(COMPLIANCE, {"state": state}, as_=as_)
    return {edge["node"]["id"] for edge in data["facilitators"]["edges"]}


async def create(gql: GraphQLClient, as_: Principal, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(CREATE, {"input": {"displayName": "Alex Morgan"} | fields}, as_=as_))[
        "createFacilitator"
    ]
    return result


async def test_checks_and_training_are_kept_as_history_and_compliance_follows_at_once(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[region])

    created = await create(gql, coordinator)
    assert created["userErrors"] == []
    facilitator = created["facilitator"]
    assert facilitator["complianceState"] == "CHECK_EXPIRED"
    assert facilitator["id"] in await ids_in(gql, "CHECK_EXPIRED", coordinator)

    checked = (
        await gql.data(
            CHECK,
            {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today() - timedelta(days=400)),
                       "expiresOn": str(today() + timedelta(days=700)), "reference": "DBS-001"}},
            as_=coordinator,
        )
    )["recordBackgroundCheck"]  # fmt: skip
    assert checked["userErrors"] == []
    assert checked["facilitator"]["complianceState"] == "TRAINING_MISSING"
    assert facilitator["id"] in await ids_in(gql, "TRAINING_MISSING", coordinator)

    trained = (
        await gql.data(
            TRAINING,
            {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today() - timedelta(days=3)),
                       "reference": "Course 12"}},
            as_=coordinator,
        )
    )["recordTraining"]  # fmt: skip
    assert trained["facilitator"]["complianceState"] == "COMPLIANT"
    assert trained["facilitator"]["trainingCompletedOn"] == str(today() - timedelta(days=3))
    assert facilitator["id"] in await ids_in(gql, "COMPLIANT", coordinator)

    renewed = (
        await gql.data(
            CHECK,
            {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today()),
                       "expiresOn": str(today() + timedelta(days=1095)), "reference": "DBS-002"}},
            as_=coordinator,
        )
    )["recordBackgroundCheck"]  # fmt: skip
    assert renewed["facilitator"]["backgroundCheckExpiresOn"] == str(today() + timedelta(days=1095))
    # An older check entered afterwards joins the history without undoing the renewal.
    older = (
        await gql.data(
            CHECK,
            {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today() - timedelta(days=900)),
                       "expiresOn": str(today() - timedelta(days=100)), "reference": "DBS-000"}},
            as_=coordinator,
        )
    )["recordBackgroundCheck"]  # fmt: skip
    assert older["facilitator"]["backgroundCheckExpiresOn"] == str(today() + timedelta(days=1095))
    assert older["facilitator"]["complianceState"] == "COMPLIANT"

    history = (await gql.data(HISTORY, {"id": facilitator["id"]}, as_=coordinator))["node"]["checks"]
    assert [(row["kind"], row["reference"]) for row in history] == [
        ("BACKGROUND_CHECK", "DBS-000"),
        ("BACKGROUND_CHECK", "DBS-001"),
        ("TRAINING", "Course 12"),
        ("BACKGROUND_CHECK", "DBS-002"),
    ]
    actions = [event.action for event in await audit_events(db)]
    assert actions.count("facilitator.background_check_recorded") == 3
    assert actions.count("facilitator.training_recorded") == 1


async def test_bad_dates_are_refused_with_the_field_and_nothing_is_recorded(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    admin = principal_for(organisation)
    facilitator = (await create(gql, admin))["facilitator"]

    cases = [
        (CHECK, "recordBackgroundCheck", {"completedOn": str(today()), "expiresOn": str(today() - timedelta(days=1))},
         "input.expiresOn"),
        (TRAINING, "recordTraining", {"completedOn": str(today() + timedelta(days=2))}, "input.completedOn"),
        (CHECK, "recordBackgroundCheck", {"completedOn": str(today()), "expiresOn": str(today() + timedelta(days=9)),
                                          "reference": "x" * 201}, "input.reference"),
    ]  # fmt: skip
    for document, name, fields, field in cases:
        result = (await gql.data(document, {"input": {"facilitatorId": facilitator["id"]} | fields}, as_=admin))[name]
        assert result["userErrors"] == [{"field": field, "code": "INVALID"}], name
        assert result["check"] is None
    history = (await gql.data(HISTORY, {"id": facilitator["id"]}, as_=admin))["node"]["checks"]
    assert history == []


async def test_update_needs_the_current_version_and_archiving_ends_assignments(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    group = await make_group(db, region)
    admin = principal_for(organisation)
    facilitator = (await create(gql, admin))["facilitator"]
    await gql.data(
        CHECK,
        {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today()),
                   "expiresOn": str(today() + timedelta(days=900))}},
        as_=admin,
    )  # fmt: skip
    current = (
        await gql.data(
            TRAINING, {"input": {"facilitatorId": facilitator["id"], "completedOn": str(today())}}, as_=admin
        )
    )["recordTraining"]["facilitator"]
    assign_input = {"groupId": gid(group), "facilitatorId": facilitator["id"], "role": "LEAD"}
    assert (await gql.data(ASSIGN, {"input": assign_input}, as_=admin))["assignFacilitator"]["userErrors"] == []

    stale = (
        await gql.data(
            UPDATE, {"input": {"facilitatorId": facilitator["id"], "version": 1, "displayName": "A"}}, as_=admin
        )
    )["updateFacilitator"]
    assert stale["userErrors"] == [{"field": "input.version", "code": "CONFLICT"}]
    renamed = (
        await gql.data(
            UPDATE,
            {"input": {"facilitatorId": facilitator["id"], "version": current["version"], "displayName": "Alex M."}},
            as_=admin,
        )
    )["updateFacilitator"]["facilitator"]
    assert renamed["displayName"] == "Alex M."

    archived = (
        await gql.data(
            ARCHIVE, {"input": {"facilitatorId": facilitator["id"], "version": renamed["version"]}}, as_=admin
        )
    )["archiveFacilitator"]
    assert archived["userErrors"] == []
    assert archived["facilitator"]["archivedAt"] is not None
    assert facilitator["id"] not in await ids_in(gql, "COMPLIANT", admin)
    roster = await gql.data(
        "query($id: ID!) { node(id: $id) { ... on Group { facilitators { facilitator { id } } } } }",
        {"id": gid(group)},
        as_=admin,
    )
    assert roster["node"]["facilitators"] == []
    again = (await gql.data(ASSIGN, {"input": assign_input}, as_=admin))["assignFacilitator"]
    assert again["userErrors"] == [{"field": "input.facilitatorId", "code": "INVALID_STATE"}]
    event = (await audit_events(db, "facilitator.archive"))[0]
    assert event.details == {"ended_assignments": [str(group.id)]}


GROUPS = "{ groups(first: 50) { edges { node { id } } } }"


async def test_a_facilitator_linked_to_an_account_sees_only_their_own_groups(
    db: AsyncSession, gql: GraphQLClient, web: httpx.AsyncClient
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    theirs, other = await make_group(db, region), await make_group(db, region)
    person = await make_person(db, organisation, Role.FACILITATOR, (region,))
    coordinator = principal_for(organisation, role=Role.COORDINATOR, regions=[region])

    refused = await gql.execute(CREATE, {"input": {"displayName": "Jo", "userEmail": person.email}}, as_=coordinator)
    assert refused["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    admin = principal_for(organisation)
    unknown = await create(gql, admin, userEmail="nobody@example.org")
    assert unknown["userErrors"] == [{"field": "input.userEmail", "code": "NOT_FOUND"}]
    linked = await create(gql, admin, displayName="Jo", userEmail=person.email)
    assert linked["userErrors"] == []
    duplicate = await create(gql, admin, displayName="Jo again", userEmail=person.email)
    assert duplicate["userErrors"] == [{"field": "input.userEmail", "code": "DUPLICATE"}]

    facilitator = await _facilitator_of(db, linked["facilitator"]["id"])
    await assign(db, theirs, facilitator)

    token = await person_tokens(web, person.email)
    response = await web.post("/graphql", json={"query": GROUPS}, headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = {edge["node"]["id"] for edge in response.json()["data"]["groups"]["edges"]}
    assert seen == {gid(theirs)}
    assert gid(other) not in seen


async def _facilitator_of(db: AsyncSession, global_id: str) -> Any:
    from programme_api.domain.models import Facilitator
    from programme_api.schema.relay import from_global_id

    _type, raw = from_global_id(global_id)
    return await db.get(Facilitator, raw)

"""Organisations take part in another organisation's evaluation project only while their own admin agrees.

Through HTTP on both databases: the owner's admin invites (``participatingOrganisationIds``); the project's
evaluators see nothing of the invited organisation until its admin accepts, then its consented rows, and
nothing again once it leaves or the owner withdraws it. Nobody else can accept for it.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import EvaluationProject, Organisation, Role, Topic
from programme_api.schema.relay import to_global_id

from .api import GraphQLClient
from .factories import (
    audit_events,
    evaluator_for,
    gid,
    make_consent,
    make_group,
    make_organisation,
    make_participant,
    make_region,
    principal_for,
    shipped_instrument_ids,
)
from .factories import make_response as respond

INVITATION = "userErrors { field code } invitation { projectId organisationId ownerOrganisationId status version }"
CREATE = """mutation($input: CreateEvaluationProjectInput!) { createEvaluationProject(input: $input) {
  userErrors { field code } evaluationProject { id version invitations { organisationId status } } } }"""
UPDATE = """mutation($input: UpdateEvaluationProjectInput!) { updateEvaluationProject(input: $input) {
  userErrors { field code } evaluationProject { version invitations { organisationId status } } } }"""
JOIN = f"""mutation($input: EvaluationProjectInvitationInput!) {{ joinEvaluationProject(input: $input) {{
  {INVITATION} }} }}"""
LEAVE = JOIN.replace("joinEvaluationProject", "leaveEvaluationProject")
RECEIVED = """query($statuses: [EvaluationInvitationStatus!]) { evaluationProjectInvitations(statuses: $statuses) {
  projectId status respondedAt project { slug name instrumentCodes consentPurpose } } }"""
ROWS = "{ evaluation { responses(first: 50) { totalCount edges { node { region } } } } }"
NEW = {"slug": "shared-2026", "name": "Shared 2026", "instrumentCodes": ["phq9"], "startsOn": "2026-01-01",
       "endsOn": "2026-12-31"}  # fmt: skip


async def world(db: AsyncSession) -> dict[str, Organisation]:
    """An owner, a partner and an outsider, each with two consenting respondents; the partner also has one
    who did not consent, whose row no evaluator may ever see."""
    await shipped_instrument_ids(db)
    organisations = {name: await make_organisation(db) for name in ("owner", "partner", "outsider")}
    for name, organisation in organisations.items():
        region = await make_region(db, organisation, name=f"{name} region")
        group = await make_group(db, region, topic=Topic.ANXIETY)
        for consenting in (True, True, name != "partner"):
            participant = await make_participant(db, region)
            if consenting:
                await make_consent(db, participant)
            await respond(db, participant, group, value=2)
    return organisations


async def create(gql: GraphQLClient, owner: Organisation, *invited: Organisation | str) -> dict[str, Any]:
    ids = [o if isinstance(o, str) else gid(o) for o in invited]
    variables = {"input": NEW | {"participatingOrganisationIds": ids}}
    result: dict[str, Any] = (await gql.data(CREATE, variables, as_=principal_for(owner)))["createEvaluationProject"]
    return result


async def regions_seen(gql: GraphQLClient, evaluator: Any) -> list[str]:
    view = (await gql.data(ROWS, as_=evaluator))["evaluation"]["responses"]
    assert view["totalCount"] == len(view["edges"])
    return sorted(edge["node"]["region"] for edge in view["edges"])


async def answer(gql: GraphQLClient, mutation: str, project_id: str, as_: Any, key: str | None = None) -> Any:
    variables = {"input": {"projectId": project_id, "idempotencyKey": key}}
    return (await gql.data(mutation, variables, as_=as_))["leaveEvaluationProject" if "leave" in mutation
                                                          else "joinEvaluationProject"]  # fmt: skip


async def test_an_invited_organisation_takes_part_only_while_its_own_admin_agrees(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    orgs = await world(db)
    created = await create(gql, orgs["owner"], orgs["partner"])
    assert created["userErrors"] == []
    project_id = created["evaluationProject"]["id"]
    assert created["evaluationProject"]["invitations"] == [{"organisationId": gid(orgs["partner"]),
                                                            "status": "PENDING"}]  # fmt: skip
    project = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == NEW["slug"]))
    assert project is not None
    evaluator = evaluator_for(orgs["owner"], project)
    owner_only = ["owner region", "owner region", "owner region"]
    assert await regions_seen(gql, evaluator) == owner_only

    partner_admin = principal_for(orgs["partner"])
    received = (await gql.data(RECEIVED, {"statuses": ["PENDING"]}, as_=partner_admin))["evaluationProjectInvitations"]
    assert received == [{"projectId": project_id, "status": "PENDING", "respondedAt": None, "project": {
        "slug": "shared-2026", "name": "Shared 2026", "instrumentCodes": ["phq9"], "consentPurpose": "EVALUATION"}}]  # fmt: skip
    assert (await gql.data(RECEIVED, as_=principal_for(orgs["outsider"])))["evaluationProjectInvitations"] == []

    # Nobody but the partner's own admin accepts for it.
    coordinator = principal_for(orgs["partner"], role=Role.COORDINATOR)
    body = await gql.execute(JOIN, {"input": {"projectId": project_id}}, as_=coordinator)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    for stranger in (principal_for(orgs["outsider"]), principal_for(orgs["owner"])):
        refused = await answer(gql, JOIN, project_id, stranger)
        assert refused == {"userErrors": [{"field": "input.projectId", "code": "NOT_FOUND"}], "invitation": None}
    assert await regions_seen(gql, evaluator) == owner_only

    joined = await answer(gql, JOIN, project_id, partner_admin, key="join-1")
    assert joined == {"userErrors": [], "invitation": {"projectId": project_id, "organisationId": gid(orgs["partner"]),
                      "ownerOrganisationId": gid(orgs["owner"]), "status": "ACCEPTED", "version": 2}}  # fmt: skip
    assert await answer(gql, JOIN, project_id, partner_admin, key="join-1") == joined  # the first result, again
    # The partner's consented rows, and only those.
    assert await regions_seen(gql, evaluator) == sorted(owner_only + ["partner region"] * 2)
    again = await answer(gql, JOIN, project_id, partner_admin)
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_STATE"]

    left = await answer(gql, LEAVE, project_id, partner_admin)
    assert (left["userErrors"], left["invitation"]["status"]) == ([], "LEFT")
    assert await regions_seen(gql, evaluator) == owner_only
    assert [e["code"] for e in (await answer(gql, LEAVE, project_id, partner_admin))["userErrors"]] == ["INVALID_STATE"]
    events = await audit_events(db)
    answered = [(e.action, e.organisation_id) for e in events if e.action.startswith("evaluation_project.")]
    assert answered == [("evaluation_project.create", orgs["owner"].id),
                        ("evaluation_project.join", orgs["partner"].id),
                        ("evaluation_project.leave", orgs["partner"].id)]  # fmt: skip


async def test_the_owner_withdraws_an_organisation_and_unknown_ones_are_not_found(
    db: AsyncSession, gql: GraphQLClient
) -> None:
    orgs = await world(db)
    unknown = await create(gql, orgs["owner"], orgs["partner"], str(to_global_id("Organisation", uuid.uuid4())))
    assert unknown == {"userErrors": [{"field": "input.participatingOrganisationIds.1", "code": "NOT_FOUND"}],
                       "evaluationProject": None}  # fmt: skip
    malformed = await gql.data(CREATE, {"input": NEW | {"participatingOrganisationIds": ["nonsense"]}},
                               as_=principal_for(orgs["owner"]))  # fmt: skip
    assert malformed["createEvaluationProject"]["userErrors"][0]["field"] == "input.participatingOrganisationIds.0"

    project_id = (await create(gql, orgs["owner"], orgs["partner"]))["evaluationProject"]["id"]
    project = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == NEW["slug"]))
    assert project is not None
    evaluator = evaluator_for(orgs["owner"], project)
    partner_admin = principal_for(orgs["partner"])
    assert (await answer(gql, JOIN, project_id, partner_admin))["userErrors"] == []
    assert "partner region" in await regions_seen(gql, evaluator)

    owner_admin = principal_for(orgs["owner"])
    withdraw = {"projectId": project_id, "version": 1, "participatingOrganisationIds": []}
    updated = (await gql.data(UPDATE, {"input": withdraw}, as_=owner_admin))["updateEvaluationProject"]
    assert updated == {"userErrors": [], "evaluationProject": {"version": 2, "invitations": [
        {"organisationId": gid(orgs["partner"]), "status": "WITHDRAWN"}]}}  # fmt: skip
    assert "partner region" not in await regions_seen(gql, evaluator)
    assert [e["code"] for e in (await answer(gql, JOIN, project_id, partner_admin))["userErrors"]] == ["INVALID_STATE"]
    # A foreign admin cannot invite to, or withdraw from, a project that is not theirs.
    foreign = {"projectId": project_id, "version": 2, "participatingOrganisationIds": [gid(orgs["outsider"])]}
    refused = await gql.data(UPDATE, {"input": foreign}, as_=principal_for(orgs["outsider"]))
    assert refused["updateEvaluationProject"]["userErrors"] == [{"field": "input.projectId", "code": "NOT_FOUND"}]

    again = {"projectId": project_id, "version": 2, "participatingOrganisationIds": [gid(orgs["partner"])]}
    reinvited = (await gql.data(UPDATE, {"input": again}, as_=owner_admin))["updateEvaluationProject"]
    assert reinvited["evaluationProject"]["invitations"] == [{"organisationId": gid(orgs["partner"]),
                                                              "status": "PENDING"}]  # fmt: skip
    assert "partner region" not in await regions_seen(gql, evaluator)  # pending again until it accepts again
    assert (await answer(gql, JOIN, project_id, partner_admin))["invitation"]["status"] == "ACCEPTED"
    assert "partner region" in await regions_seen(gql, evaluator)

"""An organisation's admin sets up, changes and closes evaluation projects through HTTP.

The project's pseudonym key is generated and never shown; only the owner's admin changes it; closing it stops
its evaluators' reads at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import EvaluationProject, EvaluationProjectOrganisation, Role

from .api import GraphQLClient
from .factories import (
    audit_events,
    evaluator_for,
    gid,
    make_organisation,
    make_project,
    principal_for,
    shipped_instrument_ids,
)

FIELDS = """userErrors { field code message } evaluationProject { id slug name instrumentCodes startsOn endsOn
  consentPurpose suppressionThreshold closedAt version }"""
CREATE = f"mutation($input: CreateEvaluationProjectInput!) {{ createEvaluationProject(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"mutation($input: UpdateEvaluationProjectInput!) {{ updateEvaluationProject(input: $input) {{ {FIELDS} }} }}"
CLOSE = f"mutation($input: CloseEvaluationProjectInput!) {{ closeEvaluationProject(input: $input) {{ {FIELDS} }} }}"
NEW = {"slug": "wellbeing-2027", "name": "Wellbeing 2027", "instrumentCodes": ["swemwbs", "phq9"],
       "startsOn": "2027-01-01", "endsOn": "2027-12-31", "consentPurpose": "EVALUATION", "suppressionThreshold": 8}  # fmt: skip


async def create(gql: GraphQLClient, as_: Any, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(CREATE, {"input": NEW | overrides}, as_=as_))["createEvaluationProject"]
    return result


async def test_an_admin_creates_a_project_with_a_key_of_its_own(db: AsyncSession, gql: GraphQLClient) -> None:
    await shipped_instrument_ids(db)
    organisation = await make_organisation(db)
    admin = principal_for(organisation)
    created = await create(gql, admin)
    assert created["userErrors"] == []
    project = created["evaluationProject"]
    assert (project["slug"], project["instrumentCodes"], project["suppressionThreshold"], project["version"]) == (
        "wellbeing-2027", ["swemwbs", "phq9"], 8, 1)  # fmt: skip
    row = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == "wellbeing-2027"))
    assert row is not None
    assert len(row.pseudonym_key) == 32
    other = await create(gql, principal_for(await make_organisation(db)), slug="other-project")
    other_row = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == "other-project"))
    assert other["userErrors"] == []
    assert other_row is not None
    assert other_row.pseudonym_key != row.pseudonym_key
    members = set(await db.scalars(sa.select(EvaluationProjectOrganisation.organisation_id).where(
        EvaluationProjectOrganisation.evaluation_project_id == row.id)))  # fmt: skip
    assert members == {organisation.id}
    events = await audit_events(db, "evaluation_project.create")
    assert len(events) == 2
    assert all(row.pseudonym_key.hex() not in str(event.details) for event in events)


async def test_bad_projects_are_refused_with_the_field(db: AsyncSession, gql: GraphQLClient) -> None:
    await shipped_instrument_ids(db)
    organisation = await make_organisation(db)
    admin = principal_for(organisation)
    assert (await create(gql, admin))["userErrors"] == []
    cases = [
        ({"slug": "wellbeing-2027"}, "input.slug", "DUPLICATE"),
        ({"slug": "x2", "instrumentCodes": ["nope"]}, "input.instrumentCodes.0", "NOT_FOUND"),
        ({"slug": "x3", "endsOn": "2026-12-31"}, "input.endsOn", "INVALID"),
        ({"slug": "x4", "suppressionThreshold": 4}, "input.suppressionThreshold", "INVALID"),
    ]
    for overrides, field, code in cases:
        errors = (await create(gql, admin, **overrides))["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [(field, code)], overrides
    coordinator = principal_for(organisation, role=Role.COORDINATOR)
    body = await gql.execute(CREATE, {"input": NEW | {"slug": "x5"}}, as_=coordinator)
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert await db.scalar(sa.select(sa.func.count()).select_from(EvaluationProject)) == 1


async def test_only_the_owner_changes_a_project_and_versions_guard_it(db: AsyncSession, gql: GraphQLClient) -> None:
    await shipped_instrument_ids(db)
    organisation = await make_organisation(db)
    admin = principal_for(organisation)
    project = (await create(gql, admin))["evaluationProject"]
    changes = {"projectId": project["id"], "version": 1, "name": "Wellbeing 2027-28", "endsOn": "2028-06-30"}
    updated = (await gql.data(UPDATE, {"input": changes}, as_=admin))["updateEvaluationProject"]
    assert updated["userErrors"] == []
    assert (updated["evaluationProject"]["name"], updated["evaluationProject"]["version"]) == ("Wellbeing 2027-28", 2)
    stale = (await gql.data(UPDATE, {"input": changes}, as_=admin))["updateEvaluationProject"]
    assert [e["code"] for e in stale["userErrors"]] == ["CONFLICT"]
    foreign = principal_for(await make_organisation(db))
    refused = (await gql.data(UPDATE, {"input": changes | {"version": 2}}, as_=foreign))["updateEvaluationProject"]
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [("input.projectId", "NOT_FOUND")]


async def test_closing_a_project_stops_its_evaluators_at_once(db: AsyncSession, gql: GraphQLClient) -> None:
    organisation = await make_organisation(db)
    project = await make_project(db, organisation)
    evaluator = evaluator_for(organisation, project)
    query = "{ evaluation { slug responses(first: 1) { edges { node { pseudonym } } } } }"
    assert (await gql.data(query, as_=evaluator))["evaluation"]["slug"] == project.slug
    admin = principal_for(organisation)
    closed = await gql.data(CLOSE, {"input": {"projectId": gid(project), "version": 1}}, as_=admin)
    assert closed["closeEvaluationProject"]["evaluationProject"]["closedAt"] is not None
    body = await gql.execute(query, as_=evaluator)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    again = await gql.data(CLOSE, {"input": {"projectId": gid(project), "version": 2}}, as_=admin)
    assert [e["code"] for e in again["closeEvaluationProject"]["userErrors"]] == ["INVALID_STATE"]
    listed = await gql.data("{ evaluationProjects { nodes { slug closedAt } } }", as_=admin)
    assert [node["slug"] for node in listed["evaluationProjects"]["nodes"]] == [project.slug]

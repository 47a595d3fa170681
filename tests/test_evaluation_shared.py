"""Shared evaluation projects through HTTP with real OAuth clients: one project, one view, one set of pseudonyms
for every participating organisation; clients of other organisations cannot be bound to it."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.config import Settings
from programme_api.db import create_engine
from programme_api.domain.demo import EVALUATION_SLUG, ORGANISATION_SLUGS, load_demo
from programme_api.domain.errors import DomainError, ErrorCode
from programme_api.domain.evaluation import outcome_cube
from programme_api.domain.models import (
    AuditEvent,
    ConsentPurpose,
    EvaluationProject,
    EvaluationProjectOrganisation,
    OAuthClient,
    Organisation,
    Timepoint,
    Topic,
    User,
)
from programme_api.domain.pseudonyms import pseudonym

from .api import GraphQLClient
from .factories import (
    evaluator_for,
    make_consent,
    make_group,
    make_organisation,
    make_participant,
    make_project,
    make_region,
)
from .factories import make_response as respond
from .oauth_support import Client, app, client_credentials, make_client, settings, web
from .test_demo import TODAY
from .test_oauth_cli import cli_settings, invoke, query
from .test_suppression_properties import derivable_figures, every_answer

ROWS = """query R($after: String) { evaluation { slug suppressionThreshold
  responses(first: 100, after: $after) { totalCount edges { node { pseudonym region groupTopic timepoint score } }
  pageInfo { hasNextPage endCursor } } } }"""


async def shared_project(db: AsyncSession) -> dict[str, Any]:
    """A project owned by one organisation with a second taking part, each with consenting respondents, and a
    third organisation outside it."""
    owner = await make_organisation(db, suppression_threshold=1)
    partner = await make_organisation(db, suppression_threshold=1)
    outsider = await make_organisation(db, suppression_threshold=1)
    people = []
    for organisation, name in ((owner, "Owner region"), (partner, "Partner region"), (outsider, "Outside region")):
        region = await make_region(db, organisation, name=name)
        group = await make_group(db, region, topic=Topic.ANXIETY)
        for _ in range(2):
            participant = await make_participant(db, region)
            await make_consent(db, participant)
            await respond(db, participant, group, value=2)
            await respond(db, participant, group, value=1, timepoint=Timepoint.FOLLOW_UP_1)
            people.append(participant)
    project = await make_project(db, owner)
    db.add(EvaluationProjectOrganisation(organisation_id=partner.id, evaluation_project_id=project.id))
    await db.flush()
    return {"owner": owner, "partner": partner, "outsider": outsider, "project": project, "people": people}


async def bearer(web: httpx.AsyncClient, client: Client) -> dict[str, str]:
    response = await client_credentials(web, client)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def evaluation_rows(web: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, list[tuple[Any, ...]]]:
    rows: list[tuple[Any, ...]] = []
    after = None
    while True:
        response = await web.post("/graphql", json={"query": ROWS, "variables": {"after": after}}, headers=headers)
        body = response.json()
        assert "errors" not in body, body
        view = body["data"]["evaluation"]
        page = view["responses"]
        rows += [tuple(edge["node"].values()) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return view["slug"], sorted(rows, key=str)
        after = page["pageInfo"]["endCursor"]


async def test_clients_of_every_participating_organisation_read_the_same_rows_and_pseudonyms(
    db: AsyncSession, web: httpx.AsyncClient
) -> None:
    s = await shared_project(db)
    slug = s["project"].slug
    owner_client = await make_client(db, s["owner"], "evaluation:read", evaluation_project_slug=slug)
    partner_client = await make_client(db, s["partner"], "evaluation:read", evaluation_project_slug=slug)
    await db.commit()

    owner_view = await evaluation_rows(web, await bearer(web, owner_client))
    partner_view = await evaluation_rows(web, await bearer(web, partner_client))
    assert owner_view == partner_view
    _, rows = owner_view
    assert {row[1] for row in rows} == {"Owner region", "Partner region"}  # both organisations, not the outsider
    assert len(rows) == 8
    # The project's own key makes the pseudonyms, whoever asks.
    assert {row[0] for row in rows} == {pseudonym(s["project"].pseudonym_key, p.id) for p in s["people"][:4]}

    exports = []
    for client in (owner_client, partner_client):
        response = await web.get("/exports/surveys.csv", headers=await bearer(web, client))
        assert response.status_code == 200, response.text
        exports.append(sorted(tuple(line) for line in csv.reader(io.StringIO(response.text))))
    assert exports[0] == exports[1]
    assert len(exports[0]) == 9  # the header and eight rows
    assert {line[0] for line in exports[0][:-1]} == {row[0] for row in rows}

    aggregates = """{ evaluation { aggregates(instrumentCode: "phq9", by: REGION) { cells { key n } } } }"""
    tables = [
        (await web.post("/graphql", json={"query": aggregates}, headers=await bearer(web, client))).json()
        for client in (owner_client, partner_client)
    ]
    assert tables[0]["data"] == tables[1]["data"]
    assert tables[0]["data"]["evaluation"]["aggregates"]["cells"] == [
        {"key": "Owner region", "n": 4},
        {"key": "Partner region", "n": 4},
    ]


async def test_the_strictest_participating_threshold_applies(db: AsyncSession, web: httpx.AsyncClient) -> None:
    s = await shared_project(db)
    partner = await db.get(Organisation, s["partner"].id)
    assert partner is not None
    partner.suppression_threshold = 7
    owner_client = await make_client(db, s["owner"], "evaluation:read", evaluation_project_slug=s["project"].slug)
    await db.commit()
    headers = await bearer(web, owner_client)
    query = """{ evaluation { suppressionThreshold aggregates(instrumentCode: "phq9", by: REGION) {
      threshold cells { key suppressed n } total { n } } } }"""
    body = (await web.post("/graphql", json={"query": query}, headers=headers)).json()
    assert body["data"]["evaluation"]["suppressionThreshold"] == 7
    table = body["data"]["evaluation"]["aggregates"]
    assert table["threshold"] == 7
    assert table["total"]["n"] == 8
    assert all(cell["suppressed"] and cell["n"] is None for cell in table["cells"])  # 4 and 4, both under 7
    codebook = (await web.get("/exports/codebook.json", headers=headers)).json()
    assert codebook["suppression"]["threshold"] == 7
    assert codebook["project"]["suppression_threshold"] == 7
    assert any("complement" in rule.lower() for rule in codebook["suppression"]["rules"])


async def test_a_client_of_an_organisation_outside_the_project_cannot_be_bound_to_it(
    db: AsyncSession, web: httpx.AsyncClient
) -> None:
    s = await shared_project(db)
    before = await db.scalar(sa.select(sa.func.count()).select_from(OAuthClient))
    with pytest.raises(DomainError) as refused:
        await make_client(db, s["outsider"], "evaluation:read", evaluation_project_slug=s["project"].slug)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert "does not take part" in refused.value.message
    assert await db.scalar(sa.select(sa.func.count()).select_from(OAuthClient)) == before
    with pytest.raises(DomainError) as unknown:
        await make_client(db, s["outsider"], "evaluation:read", evaluation_project_slug="no-such-project")
    assert unknown.value.code is ErrorCode.NOT_FOUND

    # A token bound to the project by some other route still reaches nothing from outside it.
    outsider_client = await make_client(db, s["outsider"], "programme:read")
    row = await db.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == outsider_client.client_id))
    assert row is not None
    row.scope, row.evaluation_project_id = "evaluation:read", s["project"].id
    await db.commit()
    headers = await bearer(web, outsider_client)
    body = (await web.post("/graphql", json={"query": ROWS}, headers=headers)).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await web.get("/exports/surveys.csv", headers=headers)).status_code in (403, 404)


def test_cli_refuses_a_client_for_an_organisation_outside_the_project_in_one_line(cli_settings: Settings) -> None:
    async def seed() -> None:
        """A second organisation ("beacon") owns "shared-eval"; "acme" (from the fixture) does not take part."""
        engine = create_engine(cli_settings)
        async with engine.begin() as connection:
            beacon = (
                await connection.execute(
                    sa.insert(Organisation).values(slug="beacon", name="Beacon").returning(Organisation.id)
                )
            ).scalar_one()
            await connection.execute(
                sa.insert(EvaluationProject).values(
                    organisation_id=beacon, slug="shared-eval", name="Shared", instrument_codes=["phq9"],
                    starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31), consent_purpose=ConsentPurpose.EVALUATION,
                    suppression_threshold=10, pseudonym_key=b"k" * 32,
                )
            )  # fmt: skip
        await engine.dispose()

    asyncio.run(seed())
    arguments = ["clients", "create", "--organisation", "acme", "--name", "Evaluator script",
                 "--scope", "evaluation:read", "--evaluation-project", "shared-eval", "--json"]  # fmt: skip
    code, out, err = invoke(*arguments)
    assert code != 0
    assert out == ""
    assert err.strip().count("\n") == 0
    assert "does not take part in evaluation project 'shared-eval'" in err
    assert "Traceback" not in err
    assert query(cli_settings, sa.select(OAuthClient)) == []
    assert query(cli_settings, sa.select(AuditEvent)) == []
    code, out, err = invoke(
        "users", "create", "--organisation", "acme", "--email", "eve@acme.example", "--role", "evaluator",
        "--evaluation-project", "shared-eval", "--password-stdin", stdin="a long enough password\n",
    )  # fmt: skip
    assert code != 0
    assert err.strip().count("\n") == 0
    assert "does not take part in evaluation project 'shared-eval'" in err
    assert query(cli_settings, sa.select(User)) == []

    code, out, err = invoke("organisations", "list", "--json")
    acme = next(o for o in json.loads(out) if o["slug"] == "acme")

    async def join() -> None:
        engine = create_engine(cli_settings)
        async with engine.begin() as connection:
            project = (await connection.execute(sa.select(EvaluationProject.id))).scalar_one()
            await connection.execute(
                sa.insert(EvaluationProjectOrganisation).values(
                    organisation_id=uuid.UUID(acme["id"]), evaluation_project_id=project
                )
            )
        await engine.dispose()

    asyncio.run(join())
    code, out, err = invoke(*arguments)
    assert code == 0, err
    (row,) = query(cli_settings, sa.select(OAuthClient))
    assert row.client_id == json.loads(out)["client_id"]


async def test_demo_evaluation_is_one_view_for_both_organisations_and_hides_nothing_derivable(
    db: AsyncSession, gql: GraphQLClient, backend: str
) -> None:
    """The demo's project covers both demo organisations: each one's evaluator gets the same answers, and across
    every answer of every project instrument no hidden figure can be derived (the demo had 27 that could)."""
    await load_demo(db, today=TODAY)
    if backend == "postgresql":  # freshly loaded tables have no statistics yet (autovacuum gathers them later)
        await db.execute(sa.text("ANALYZE"))
    project = await db.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == EVALUATION_SLUG))
    assert project is not None
    evaluators = []
    for slug in ORGANISATION_SLUGS:
        organisation = await db.scalar(sa.select(Organisation).where(Organisation.slug == slug))
        assert organisation is not None
        evaluators.append(evaluator_for(organisation, project))
    query = """query A($code: String!, $tp: Timepoint) { evaluation { responses(first: 5) { totalCount
      edges { node { pseudonym } } }
      aggregates(instrumentCode: $code, by: REGION, timepoint: $tp) { cells { key n reliableImprovement } } } }"""
    for variables in ({"code": "swemwbs", "tp": "EXIT"}, {"code": "phq9", "tp": None}):
        first, second = [await gql.data(query, variables, as_=evaluator) for evaluator in evaluators]
        assert first == second
        assert first["evaluation"]["responses"]["totalCount"] > 0

    hidden = 0
    for code in project.instrument_codes:
        cube = await outcome_cube(db, project, str(code))
        answers = every_answer(cube)
        assert derivable_figures(answers) == [], code
        hidden += sum(cell.suppressed for _, _, table in answers for cell in table.cells)
    assert hidden > 0  # the demo does have small cells: the check above is not vacuous

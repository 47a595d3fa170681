"""Introspection for every authenticated caller, machine clients included; nothing for anonymous callers."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import dataclasses
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import ActorType

from .factories import make_organisation, principal_for
from .oauth_support import World, app, client_credentials, make_client, settings, web, world

SCHEMA_QUERY = "{ __schema { queryType { name } types { name } } }"
TYPE_QUERY = '{ __type(name: "Group") { name fields { name } } }'
MISSPELLED = "{ grups(first: 1) { nodes { name } } }"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/graphql-response+json"}


@pytest.mark.parametrize("kind", ["machine client", "person"])
async def test_every_authenticated_caller_may_introspect(db: AsyncSession, http, kind: str) -> None:  # type: ignore[no-untyped-def]
    client, tokens = http
    base = principal_for(await make_organisation(db), role=None)
    if kind == "machine client":
        caller = dataclasses.replace(base, actor_type=ActorType.CLIENT, client_id="partner", user_id=None)
    else:
        caller = dataclasses.replace(base, user_id=uuid.uuid4())
    token = tokens.issue(caller)
    schema = await client.post("/graphql", json={"query": SCHEMA_QUERY}, headers=bearer(token))
    assert schema.status_code == 200, schema.text
    assert schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert "Group" in {type_["name"] for type_ in schema.json()["data"]["__schema"]["types"]}
    one_type = await client.post("/graphql", json={"query": TYPE_QUERY}, headers=bearer(token))
    assert "name" in {field["name"] for field in one_type.json()["data"]["__type"]["fields"]}
    # and the authenticated caller is helped with a misspelling
    helped = await client.post("/graphql", json={"query": MISSPELLED}, headers=bearer(token))
    assert "Did you mean" in helped.json()["errors"][0]["message"]


async def test_a_client_credentials_token_may_introspect(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    registered = await make_client(db, world.org_a, "programme:read")
    issued = await client_credentials(web, registered)
    assert issued.status_code == 200, issued.text
    response = await web.post("/graphql", json={"query": SCHEMA_QUERY}, headers=bearer(issued.json()["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize("query", [SCHEMA_QUERY, TYPE_QUERY, MISSPELLED])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_anonymous_callers_learn_nothing_of_the_schema(http, query: str, method: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = http
    headers = {"Accept": "application/graphql-response+json"}
    if method == "GET":
        response = await client.get("/graphql", params={"query": query}, headers=headers)
    else:
        response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 401
    assert "data" not in response.json()
    assert "Did you mean" not in response.text
    assert "Group" not in response.text
    assert "Query" not in response.text

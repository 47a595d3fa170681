"""Static query cost: worked out before anything runs, refused over the maximum, reported on every answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import parse, validate
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.principal import Principal
from programme_api.explorer.operations import SAVED_OPERATIONS
from programme_api.schema import schema
from programme_api.schema.cost import CostAnalysis
from programme_api.schema.relay import to_global_id

from .api import TokenBook
from .conftest import MigratedDatabase, StatementCounter, as_app_role
from .factories import make_group, make_organisation, make_region, principal_for

GRAPHQL_RESPONSE = "application/graphql-response+json"
NESTED = "{ groups(first: 100) { nodes { sessions(first: 100) { nodes { id } } } } }"


async def post(http: tuple[httpx.AsyncClient, TokenBook], principal: Principal, query: str,
               variables: dict[str, Any] | None = None) -> httpx.Response:  # fmt: skip
    client, tokens = http
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}", "Accept": GRAPHQL_RESPONSE},
    )


def cost_of(response: httpx.Response) -> dict[str, Any]:
    cost: dict[str, Any] = response.json()["extensions"]["cost"]
    return cost


@pytest.fixture
async def caller(db: AsyncSession) -> Principal:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    for _ in range(3):
        await make_group(db, region)
    return principal_for(organisation)


@pytest.mark.parametrize(
    ("query", "variables", "requested"),
    [
        ("{ viewer { subject scopes } }", None, 1),
        ("{ groups(first: 10) { totalCount nodes { name } } }", None, 11),
        ("{ groups(first: 10) { edges { cursor node { name region { name } } } } }", None, 21),
        ("{ groups { pageInfo { hasNextPage } nodes { id } } }", None, 22),  # default page of 20, pageInfo 1
        ("query($n: Int) { groups(last: $n) { nodes { id } } }", {"n": 50}, 51),
        ("{ regions(first: 2) { nodes { groups(first: 5) { nodes { name } } } } }", None, 15),
        ('{ node(id: "x") { ... on Group { sessions(first: 5) { nodes { id } } } } }', None, 7),
        ('{ nodes(ids: ["a", "b", "c"]) { id } }', None, 3),
        ("{ __schema { types { name fields { name } } } }", None, 0),
        ('mutation { createRegion(input: {slug: "cost-test", name: "Cost"}) { region { name } } }', None, 12),
    ],
)
async def test_requested_cost_follows_the_published_rules(  # type: ignore[no-untyped-def]
    http, caller: Principal, query: str, variables: dict[str, Any] | None, requested: int
) -> None:
    response = await post(http, caller, query, variables)
    assert response.status_code == 200, response.text
    cost = cost_of(response)
    assert cost["requestedQueryCost"] == requested
    assert cost["throttleStatus"]["maximumAvailable"] == 5000
    assert cost["throttleStatus"]["restoreRate"] == 100.0


async def test_actual_cost_counts_what_came_back(http, caller: Principal) -> None:  # type: ignore[no-untyped-def]
    response = await post(http, caller, "{ groups(first: 50) { nodes { name region { name } } } }")
    cost = cost_of(response)
    assert len(response.json()["data"]["groups"]["nodes"]) == 3
    assert cost["requestedQueryCost"] == 101
    assert cost["actualQueryCost"] == 1 + 3 * 2
    # what the answer did not use went back to the bucket: only the actual cost was spent (101 were reserved)
    assert cost["throttleStatus"]["currentlyAvailable"] >= 5000 - 7


async def test_compiled_reads_and_the_executor_report_the_same_costs(  # type: ignore[no-untyped-def]
    two_clients, caller: Principal
) -> None:
    tokens, compiled, executor = two_clients
    query = "{ groups(first: 10) { nodes { name region { name } sessions(first: 3) { totalCount } } } }"
    costs = []
    for client in (compiled, executor):
        response = await client.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {tokens.issue(caller)}"}
        )
        costs.append((cost_of(response)["requestedQueryCost"], cost_of(response)["actualQueryCost"]))
    assert costs[0] == costs[1] == (1 + 10 * 3, 1 + 3 * 3)


async def test_too_costly_query_is_refused_before_any_sql(  # type: ignore[no-untyped-def]
    http, caller: Principal, statement_counter: StatementCounter
) -> None:
    statement_counter.reset()
    response = await post(http, caller, NESTED)
    assert statement_counter.count == 0, statement_counter.statements
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    error = body["errors"][0]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "requestedQueryCost": 10201, "allowedQueryCost": 5000}
    assert "10201" in error["message"]
    assert "5000" in error["message"]
    assert cost_of(response)["requestedQueryCost"] == 10201
    assert cost_of(response)["actualQueryCost"] == 0
    # nothing was charged for a refused query
    assert cost_of(response)["throttleStatus"]["currentlyAvailable"] == 5000


async def test_a_variable_page_size_counts_as_given(http, caller: Principal) -> None:  # type: ignore[no-untyped-def]
    query = "query($n: Int) { groups(first: $n) { nodes { sessions(first: $n) { nodes { id } } } } }"
    assert cost_of(await post(http, caller, query, {"n": 10}))["requestedQueryCost"] == 1 + 10 * (2 + 10)
    refused = await post(http, caller, query, {"n": 100})
    assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


async def test_aliases_and_fragments_are_all_counted(http, caller: Principal) -> None:  # type: ignore[no-untyped-def]
    query = """
        { a: groups(first: 80) { ...g } b: groups(first: 80) { ...g } }
        fragment g on GroupConnection { nodes { sessions(first: 30) { nodes { id } } } }
    """
    response = await post(http, caller, query)
    assert response.json()["errors"][0]["extensions"]["requestedQueryCost"] == 2 * (1 + 80 * (2 + 30))


@pytest.fixture
async def lenient(  # type: ignore[no-untyped-def]
    migrated_database: MigratedDatabase, session_maker: Any, connection: AsyncConnection
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenBook]]:
    """The app with a cost maximum so high that only the node limit stands in the way."""
    tokens = TokenBook()
    settings = migrated_database.settings.model_copy(update={"max_query_cost": 10**9, "rate_limit_points": 10**9})
    app = create_app(settings, engine=migrated_database.engine, session_maker=session_maker,
                     authenticate=tokens.authenticate)  # fmt: skip
    served = as_app_role(app, migrated_database.backend, connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t") as client:
        yield client, tokens


async def test_node_limit_refuses_before_any_sql(  # type: ignore[no-untyped-def]
    lenient, caller: Principal, statement_counter: StatementCounter
) -> None:
    statement_counter.reset()
    query = "{ groups(first: 100) { nodes { sessions(first: 100) { nodes { attendance { id } } } } } }"
    response = await post(lenient, caller, query)
    assert statement_counter.count == 0, statement_counter.statements
    error = response.json()["errors"][0]
    assert error["extensions"] == {
        "code": "MAX_NODE_LIMIT_EXCEEDED",
        "requestedNodes": 100 + 100 * 100 + 100 * 100 * 10,
        "allowedNodes": 50_000,
    }
    allowed = await post(lenient, caller, "{ groups(first: 100) { nodes { sessions(first: 100) { nodes { id } } } } }")
    assert allowed.status_code == 200
    assert "errors" not in allowed.json()


async def test_cost_is_reported_on_request_errors_too(http, caller: Principal) -> None:  # type: ignore[no-untyped-def]
    response = await post(http, caller, "{ groups { nope } }")
    assert response.status_code == 400
    assert cost_of(response)["requestedQueryCost"] == 0
    assert cost_of(response)["throttleStatus"]["currentlyAvailable"] == 5000


async def test_node_ids_count_as_many_objects(http, caller: Principal) -> None:  # type: ignore[no-untyped-def]
    ids = [to_global_id("Group", uuid.uuid4()) for _ in range(4)]
    response = await post(http, caller, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert cost_of(response)["requestedQueryCost"] == 4
    assert cost_of(response)["actualQueryCost"] == 0  # none found: nulls cost nothing


def saved_operations() -> dict[str, str]:
    """The explorer's saved operations (its registered documents)."""
    return {operation.id: operation.query for operation in SAVED_OPERATIONS}


def test_the_explorers_saved_operations_fit_the_default_limits() -> None:
    operations = saved_operations()
    assert "region-dashboard" in operations
    limits = Settings()
    for name, query in operations.items():
        document = parse(query)
        assert validate(schema._schema, document) == [], name
        cost = CostAnalysis(schema._schema, document, None, {}).requested()
        assert cost.points <= limits.max_query_cost, (name, cost)
        assert cost.nodes <= limits.max_query_nodes, (name, cost)

"""GraphQL over HTTP: media types, status codes, limits, masking, and the unit of work at the edge."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.schema.limits import MAX_ALIASES

from .api import TokenBook
from .factories import make_organisation, principal_for

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def token(db: AsyncSession, http: tuple[httpx.AsyncClient, TokenBook]) -> str:
    organisation = await make_organisation(db)
    return http[1].issue(principal_for(organisation))


def headers(token: str, accept: str = GRAPHQL_RESPONSE) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": accept}


async def test_post_answers_in_the_accepted_media_type(http, token) -> None:  # type: ignore[no-untyped-def]
    client, _ = http
    for accept, expected in ((GRAPHQL_RESPONSE, GRAPHQL_RESPONSE), ("application/json", "application/json"),
                             ("*/*", "application/json"), ("", "application/json")):  # fmt: skip
        response = await client.post(
            "/graphql", json={"query": "{ viewer { scopes } }"}, headers=headers(token, accept)
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(expected)
        assert "programme:read" in response.json()["data"]["viewer"]["scopes"]


async def test_get_runs_queries(http, token) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].get("/graphql", params={"query": "{ viewer { subject } }"}, headers=headers(token))
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["subject"].startswith("test:")


async def test_get_never_runs_mutations(http, token) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].get("/graphql", params={"query": "mutation { __typename }"}, headers=headers(token))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_missing_token_is_401_with_bearer_challenge(http) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].post("/graphql", json={"query": "{ viewer { subject } }"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "data" not in response.json()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'[{"query": "{ viewer { subject } }"}]', "application/json", 400),
        (b'{"query": 5}', "application/json", 400),
        (b'{"query": "{ viewer { subject } }", "variables": [1]}', "application/json", 400),
        (b'{"query": "{ viewer { subject } }", "extensions": "x"}', "application/json", 400),
        (b"query { viewer { subject } }", "text/plain", 415),
    ],
)
async def test_malformed_requests_get_precise_status(http, token, body: bytes, content_type: str, status: int) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].post("/graphql", content=body, headers=headers(token) | {"Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_unacceptable_accept_is_406(http, token) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].post(
        "/graphql", json={"query": "{ viewer { subject } }"}, headers=headers(token, "text/csv")
    )
    assert response.status_code == 406


async def test_oversized_body_is_413(http, token) -> None:  # type: ignore[no-untyped-def]
    query = "{ viewer { subject } }" + " " * (1024 * 1024)
    response = await http[0].post("/graphql", json={"query": query}, headers=headers(token))
    assert response.status_code == 413


@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), ("application/json", 200)])
async def test_parse_and_validation_errors(http, token, accept: str, status: int) -> None:  # type: ignore[no-untyped-def]
    for query in ("{ viewer { ", "{ viewer { noSuchField } }"):
        response = await http[0].post("/graphql", json={"query": query}, headers=headers(token, accept))
        assert response.status_code == status
        body = response.json()
        assert "data" not in body
        assert body["errors"][0]["message"]


async def test_variable_of_wrong_type_is_a_request_error(http, token) -> None:  # type: ignore[no-untyped-def]
    response = await http[0].post(
        "/graphql",
        json={"query": "query($n: Int) { groups(first: $n) { totalCount } }", "variables": {"n": "many"}},
        headers=headers(token),
    )
    assert response.status_code == 400
    assert "Int" in response.json()["errors"][0]["message"]


async def test_depth_alias_and_token_limits(http, token) -> None:  # type: ignore[no-untyped-def]
    deep = "{ groups { edges { node { " + "region { groups { edges { node { " * 6 + "name" + " } } } }" * 6 + " } } } }"
    aliases = "{ " + " ".join(f"a{i}: viewer {{ subject }}" for i in range(MAX_ALIASES + 1)) + " }"
    tokens = "{ viewer { " + " ".join(["subject"] * 2100) + " } }"
    for query, message in ((deep, "levels deep"), (aliases, "aliases"), (tokens, "token")):
        response = await http[0].post("/graphql", json={"query": query}, headers=headers(token))
        assert response.status_code == 400, query[:40]
        assert message in response.json()["errors"][0]["message"]


async def test_unexpected_errors_are_masked_and_logged(http, token, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from programme_api.schema import query as query_module

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(query_module.Viewer, "__init__", explode)
    with caplog.at_level(logging.ERROR):
        response = await http[0].post("/graphql", json={"query": "{ viewer { subject } }"}, headers=headers(token))
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text


async def test_introspection_works_for_signed_in_people(db: AsyncSession, http) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import uuid

    person = dataclasses.replace(principal_for(await make_organisation(db)), user_id=uuid.uuid4())
    response = await http[0].post(
        "/graphql", json={"query": "{ __schema { queryType { name } } }"}, headers=headers(http[1].issue(person))
    )
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"

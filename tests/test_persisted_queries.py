"""Apollo's automatic persisted queries at /graphql, driven the way Apollo Client's persisted-query link does.

The link sends the SHA-256 of the document alone first; on ``PersistedQueryNotFound`` it sends the hash with
the text, and from then on the hash alone, over GET for queries when asked to. Each test uses a text of its
own (a comment with a fresh id), so what one test taught the worker's memory cannot help another.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from programme_api.domain.models import ActorType
from programme_api.domain.principal import ALL_SCOPES, Principal
from programme_api.explorer.operations import SAVED_OPERATIONS
from programme_api.oauth.clients import EXPLORER_CLIENT_ID

from .api import TokenBook
from .factories import make_group, make_organisation, make_region, principal_for

GRAPHQL_RESPONSE = "application/graphql-response+json"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fresh(query: str) -> str:
    """The same operation as a text no earlier request has sent."""
    return f"# {uuid.uuid4()}\n{query}"


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


@dataclass
class ApolloStyleLink:
    """What ``createPersistedQueryLink({sha256, useGETForHashedQueries})`` sends, request by request."""

    http: httpx.AsyncClient
    token: str
    use_get: bool = False
    sent: list[tuple[str, bool]] = field(default_factory=list)  # (method, whether the text was included)

    async def request(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        digest = sha256(query)
        response = await self._send(query, digest, variables, with_text=False)
        body = response.json()
        if any(error.get("message") == "PersistedQueryNotFound" for error in body.get("errors", [])):
            response = await self._send(query, digest, variables, with_text=True)
        return response

    async def _send(
        self, query: str, digest: str, variables: dict[str, Any] | None, *, with_text: bool
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": f"{GRAPHQL_RESPONSE}, application/json"}
        if self.use_get and not with_text:
            params = {"extensions": json.dumps(persisted(digest)), "variables": json.dumps(variables or {})}
            self.sent.append(("GET", False))
            return await self.http.get("/graphql", params=params, headers=headers)
        body: dict[str, Any] = {"variables": variables or {}, "extensions": persisted(digest)}
        if with_text:
            body["query"] = query
        self.sent.append(("POST", with_text))
        return await self.http.post("/graphql", json=body, headers=headers)


@pytest.fixture
async def reader(db: AsyncSession, http: tuple[httpx.AsyncClient, TokenBook]) -> ApolloStyleLink:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_group(db, region, name="Tuesday walkers")
    await make_group(db, region, name="Thursday crafts")
    client, tokens = http
    return ApolloStyleLink(client, tokens.issue(principal_for(organisation)))


GROUP_NAMES = "query GroupNames { groups(first: 10) { nodes { name } } }"


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return sorted(node["name"] for node in body["data"]["groups"]["nodes"])


async def test_an_unknown_hash_is_persisted_query_not_found_then_the_text_registers_it(reader: ApolloStyleLink) -> None:
    query = fresh(GROUP_NAMES)

    unknown = await reader.http.post(
        "/graphql",
        json={"extensions": persisted(sha256(query))},
        headers={"Authorization": f"Bearer {reader.token}", "Accept": GRAPHQL_RESPONSE},
    )
    # 200 even for graphql-response+json: Apollo Client gives up persisted queries for good on a 400.
    assert unknown.status_code == 200
    assert unknown.json() == {
        "errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
    }
    assert "no-cache" in unknown.headers["cache-control"]

    assert names(await reader.request(query)) == ["Thursday crafts", "Tuesday walkers"]
    assert reader.sent == [("POST", False), ("POST", True)]

    assert names(await reader.request(query)) == ["Thursday crafts", "Tuesday walkers"]
    assert reader.sent[2:] == [("POST", False)]  # the hash alone was enough


async def test_a_registered_query_is_answered_over_get_by_its_hash_alone(reader: ApolloStyleLink) -> None:
    query = fresh("query GroupsNamed($first: Int!) { groups(first: $first) { nodes { name } } }")
    assert len(names(await reader.request(query, {"first": 1}))) == 1  # POST: not found, then hash + text

    reader.use_get = True
    reader.sent.clear()
    response = await reader.request(query, {"first": 2})
    assert names(response) == ["Thursday crafts", "Tuesday walkers"]
    assert reader.sent == [("GET", False)]


async def test_a_mutation_is_never_run_over_get_even_by_hash(reader: ApolloStyleLink) -> None:
    mutation = fresh(
        'mutation Rename { updateGroup(input: {groupId: "R3JvdXA6MA==", version: 1, name: "x"}) { group { name } userErrors { code } } }'
    )
    registered = await reader.request(mutation)  # POST with the text: it runs (and finds no such group)
    assert registered.status_code == 200

    answer = await reader.http.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(sha256(mutation)))},
        headers={"Authorization": f"Bearer {reader.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


async def test_a_hash_that_is_not_the_texts_is_refused_and_registers_nothing(reader: ApolloStyleLink) -> None:
    query, other = fresh(GROUP_NAMES), fresh(GROUP_NAMES)
    headers = {"Authorization": f"Bearer {reader.token}", "Accept": GRAPHQL_RESPONSE}

    wrong = await reader.http.post("/graphql", json={"query": query, "extensions": persisted(sha256(other))},
                                   headers=headers)  # fmt: skip
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == [
        {"message": "provided sha does not match query", "extensions": {"code": "INVALID"}}
    ]
    for digest in (sha256(query), sha256(other)):
        again = await reader.http.post("/graphql", json={"extensions": persisted(digest)}, headers=headers)
        assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_invalid_document_sent_with_its_hash_is_not_remembered(reader: ApolloStyleLink) -> None:
    invalid = fresh("query Nope { groups(first: 10) { nodes { noSuchField } } }")
    headers = {"Authorization": f"Bearer {reader.token}", "Accept": GRAPHQL_RESPONSE}

    refused = await reader.http.post("/graphql", json={"query": invalid, "extensions": persisted(sha256(invalid))},
                                     headers=headers)  # fmt: skip
    assert refused.status_code == 400
    assert "noSuchField" in refused.json()["errors"][0]["message"]
    again = await reader.http.post("/graphql", json={"extensions": persisted(sha256(invalid))}, headers=headers)
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "only version 1 is supported"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "not-a-hash"}}, "must be a SHA-256 in hexadecimal"),
        ({"persistedQuery": {"version": 1}}, "must be a SHA-256 in hexadecimal"),
        ({"persistedQuery": "0" * 64}, "only version 1 is supported"),
    ],
)
async def test_a_malformed_persisted_query_is_invalid(
    reader: ApolloStyleLink, extensions: dict[str, Any], message: str
) -> None:
    response = await reader.http.post(
        "/graphql",
        json={"extensions": extensions},
        headers={"Authorization": f"Bearer {reader.token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == "INVALID"


async def test_a_request_with_neither_text_nor_a_persisted_document_is_still_refused(reader: ApolloStyleLink) -> None:
    response = await reader.http.post(
        "/graphql", json={"variables": {}}, headers={"Authorization": f"Bearer {reader.token}"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "'query' must be a non-empty string"


async def test_the_explorers_saved_operations_are_answered_by_hash_without_being_sent_first(
    db: AsyncSession, http: tuple[httpx.AsyncClient, TokenBook]
) -> None:
    organisation = await make_organisation(db)
    region = await make_region(db, organisation)
    await make_group(db, region, name="Monday makers")
    client, tokens = http
    person = Principal(
        subject=f"user:{uuid.uuid4()}", actor_type=ActorType.USER, organisation_id=organisation.id,
        scopes=ALL_SCOPES - {"evaluation:read"}, user_id=uuid.uuid4(), client_id=EXPLORER_CLIENT_ID,
    )  # fmt: skip
    other_app = principal_for(organisation)
    dashboard = next(operation for operation in SAVED_OPERATIONS if operation.id == "region-dashboard")
    assert dashboard.sha256 == sha256(dashboard.query)

    for principal, expected in ((person, 200), (other_app, 200)):
        response = await client.post(
            "/graphql",
            json={"extensions": persisted(dashboard.sha256)},
            headers={"Authorization": f"Bearer {tokens.issue(principal)}", "Accept": GRAPHQL_RESPONSE},
        )
        assert response.status_code == expected
        if principal is person:
            groups = response.json()["data"]["regions"]["nodes"][0]["groups"]["nodes"]
            assert [group["name"] for group in groups] == ["Monday makers"]
        else:  # another client has not registered it: it must send the text first
            assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("operation", SAVED_OPERATIONS, ids=lambda operation: operation.id)
async def test_every_saved_operation_is_a_valid_document(operation: Any) -> None:
    from graphql import DocumentNode

    from programme_api.web.graphql import parse_document, validation_errors

    assert isinstance(parse_document(operation.query), DocumentNode)
    assert validation_errors(operation.query) == ()

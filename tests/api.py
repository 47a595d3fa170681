"""A GraphQL client over the ASGI app, with principals handed in directly (bearer token = a test key)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
from starlette.requests import HTTPConnection

from programme_api.domain.principal import Principal


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TokenBook:
    """Maps test bearer tokens to principals: the API's authenticator is swapped for this lookup."""

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}

    def issue(self, principal: Principal) -> str:
        token = f"test-token-{len(self.principals) + 1}"
        self.principals[token] = principal
        return token

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        header = connection.headers.get("authorization", "")
        return self.principals.get(header.removeprefix("Bearer ").strip()) if header else None


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, tokens: TokenBook) -> None:
        self.http = http
        self.tokens = tokens

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: Principal, status: int = 200
    ) -> dict[str, Any]:
        token = self.tokens.issue(as_)
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/graphql-response+json"},
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None, *, as_: Principal) -> dict[str, Any]:
        body = await self.execute(query, variables, as_=as_)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


def without_extensions(body: dict[str, Any]) -> dict[str, Any]:
    """``data`` and ``errors`` alone, for comparing with an answer written out in a test."""
    return {key: value for key, value in body.items() if key != "extensions"}


def without_throttle_status(body: dict[str, Any]) -> dict[str, Any]:
    """An answer with its bucket level left out: two apps (compiled reads on and off) have a bucket each, which
    refill by the clock, so only the costs they report can be compared, not how full their buckets are."""
    cost = body.get("extensions", {}).get("cost")
    if cost is None:
        return body
    return {**body, "extensions": {**body["extensions"], "cost": {**cost, "throttleStatus": None}}}


def errors(result: dict[str, Any]) -> list[tuple[str | None, str]]:
    """A mutation payload's ``userErrors`` as (field, code) pairs: what a test asserts, messages aside."""
    return [(error["field"], error["code"]) for error in result["userErrors"]]

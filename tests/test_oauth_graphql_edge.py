"""The resource server wired into the real app: /graphql answers with what the bearer token allows."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import httpx

from .oauth_support import World, app, bearer, client_credentials, person_tokens, settings, web, world

VIEWER = {"query": "query Me { viewer { subject role scopes regions { slug } } }", "operationName": "Me"}


async def test_graphql_without_a_token_is_a_bare_bearer_challenge(web: httpx.AsyncClient) -> None:
    response = await web.post("/graphql", json=VIEWER)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_graphql_with_a_bad_token_is_invalid_token(web: httpx.AsyncClient) -> None:
    response = await web.post("/graphql", json=VIEWER, headers=bearer("a.b.c"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_graphql_viewer_is_the_machine_clients_principal(web: httpx.AsyncClient, world: World) -> None:
    token = (await client_credentials(web, world.clients["machine"])).json()
    response = await web.post("/graphql", json=VIEWER, headers=bearer(token))
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert viewer["subject"] == world.clients["machine"].client_id
    assert viewer["role"] is None
    assert sorted(viewer["scopes"]) == ["attendance:write", "programme:read"]
    assert [region["slug"] for region in viewer["regions"]] == ["north"]


async def test_graphql_viewer_is_the_signed_in_coordinator(web: httpx.AsyncClient, world: World) -> None:
    token = await person_tokens(web, world.people["coordinator"].email)
    response = await web.post("/graphql", json=VIEWER, headers=bearer(token))
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert viewer["subject"] == str(world.people["coordinator"].id)
    assert [region["slug"] for region in viewer["regions"]] == ["north"]

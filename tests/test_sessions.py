"""The sign-in session lives on the server: signing out ends it for every copy of the cookie; and a redirect
URI that cannot be parsed is a clear 400 page, never a server error or a redirect."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from programme_api.oauth.clients import EXPLORER_CLIENT_ID
from programme_api.web.login import SESSION_COOKIE

from .oauth_support import (
    APP_REDIRECT,
    EXPLORER_REDIRECT,
    ISSUER,
    World,
    app,
    authorize_params,
    pkce_pair,
    settings,
    sign_in,
    web,
    world,
)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example\\@app.example/cb",
        "https://evil.example\\@app.example/callback",
        "http://[::1",
        "https://app.example:99999/cb",
        "https://app.example/cb\x00",
    ],
)
async def test_authorize_with_a_broken_redirect_uri_is_a_400_page(
    web: httpx.AsyncClient, world: World, redirect_uri: str
) -> None:
    assert (await sign_in(web, world.people["coordinator"].email)).status_code == 303
    _, challenge = pkce_pair()
    response = await web.get(
        "/oauth/authorize", params=authorize_params(world.clients["web"].client_id, redirect_uri, challenge)
    )
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "redirect" in response.text.lower()


async def _copy_of_cookie(web: httpx.AsyncClient) -> str:
    value = web.cookies.get(SESSION_COOKIE)
    assert value
    return value


async def test_a_copy_of_the_cookie_is_refused_after_sign_out(
    app: Starlette, web: httpx.AsyncClient, world: World
) -> None:
    """Given a signed-in browser and a copy of its cookie, when the person signs out, then the copy opens
    neither the consent page nor the explorer."""
    assert (await sign_in(web, world.people["coordinator"].email)).status_code == 303
    copy = await _copy_of_cookie(web)
    _, challenge = pkce_pair()
    consent = authorize_params(world.clients["web"].client_id, APP_REDIRECT, challenge)
    explorer = {"accept": "text/html"}

    async def as_copy(path: str, **kwargs: object) -> httpx.Response:
        web.cookies.clear()
        web.cookies.set(SESSION_COOKIE, copy)
        return await web.get(path, **kwargs)  # type: ignore[arg-type]

    before = await as_copy("/oauth/authorize", params=consent)
    assert before.status_code == 200
    assert "csrf" in before.text  # the consent page
    assert (await as_copy("/graphql", headers=explorer)).status_code == 200

    out = await web.get("/logout")
    assert out.status_code == 200

    after = await as_copy("/oauth/authorize", params=consent)
    assert after.status_code == 303
    assert after.headers["location"].startswith("/login")
    page = await as_copy("/graphql", headers=explorer)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


async def test_signing_out_one_browser_leaves_the_others_signed_in(
    app: Starlette, web: httpx.AsyncClient, world: World
) -> None:
    email = world.people["coordinator"].email
    assert (await sign_in(web, email)).status_code == 303
    first = await _copy_of_cookie(web)
    web.cookies.clear()
    assert (await sign_in(web, email)).status_code == 303
    second = await _copy_of_cookie(web)
    assert first != second
    await web.get("/logout")  # signs out the second browser
    web.cookies.clear()
    web.cookies.set(SESSION_COOKIE, first)
    assert (await web.get("/graphql", headers={"accept": "text/html"})).status_code == 200

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

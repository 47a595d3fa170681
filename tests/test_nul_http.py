"""A NUL character in the sign-in form and the OAuth endpoints' fields: a refusal like any wrong value, never
a 5xx (PostgreSQL cannot even compare such text)."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import httpx

from .oauth_support import World, app, hidden_value, settings, web, world

NUL = "a\x00b"


async def test_nul_in_the_sign_in_email_is_a_failed_sign_in(web: httpx.AsyncClient, world: World) -> None:
    page = await web.get("/login")
    form = {"email": f"{NUL}@example.org", "password": "x", "csrf": hidden_value(page.text, "csrf")}
    response = await web.post("/login", data=form)
    assert response.status_code == 400
    assert "Email or password is incorrect." in response.text


async def test_nul_in_oauth_fields_is_refused(web: httpx.AsyncClient, world: World) -> None:
    token = await web.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": NUL,
                                                  "client_secret": NUL})  # fmt: skip
    assert token.status_code in (400, 401)
    assert token.json()["error"] == "invalid_client"
    for endpoint in ("/oauth/introspect", "/oauth/revoke"):
        response = await web.post(endpoint, auth=(NUL, NUL), data={"token": NUL})
        assert response.status_code == 401, endpoint
    authorize = await web.get("/oauth/authorize", params={"client_id": NUL, "response_type": "code",
                                                          "redirect_uri": "https://partner.example/callback"})  # fmt: skip
    assert authorize.status_code == 400
    bearer = await web.get("/graphql", headers={"Authorization": f"Bearer {NUL}", "Accept": "application/json"})
    assert bearer.status_code == 401

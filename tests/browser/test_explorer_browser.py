"""The explorer in a real browser against a real server: sign-in, saved operations, offline, sign-out."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Request, Route, expect

from .conftest import ARTIFACTS, COORDINATOR_NORTH, COORDINATOR_SOUTH, Session

pytestmark = pytest.mark.browser

NORTH_REGIONS = {"Tyneside", "Wearside"}
EVERY_NORTHERN_REGION = {"Tyneside", "Wearside", "Teesside"}


def wait_until_ready(session: Session) -> None:
    """Signed in: GraphiQL rendered and the identity bar filled from the ``viewer`` query."""
    expect(session.page.locator(".graphiql-container")).to_be_visible()
    expect(session.page.locator("#explorer-viewer")).to_contain_text("Region")


def run_saved(session: Session, operation: str) -> dict[str, Any]:
    """Load a saved operation with one click, run it, and return the API's answer as the page received it."""
    page = session.page
    page.click(f"[data-operation={operation}]")
    with page.expect_response(lambda r: r.url.endswith("/graphql") and r.request.method == "POST") as answer:
        page.click(".graphiql-execute-button")
    body: dict[str, Any] = answer.value.json()
    return body


def dashboard_regions(result: dict[str, Any]) -> set[str]:
    return {region["name"] for region in result["data"]["regions"]["nodes"]}


def test_coordinator_signs_in_and_sees_only_their_regions(session: Session) -> None:
    page = session.page
    bearer: list[str] = []
    page.on("request", lambda r: bearer.append(r.headers.get("authorization", "")) if r.url.endswith("/graphql")
            and r.method == "POST" else None)  # fmt: skip
    session.sign_in(COORDINATOR_NORTH)
    wait_until_ready(session)

    assert urlsplit(page.url).query == "", "code and state must be stripped from the address"
    identity = page.locator("#explorer-identity")
    expect(identity).to_contain_text("Morag Fenwick")
    expect(identity).to_contain_text("coordinator")
    expect(identity).to_contain_text("Northern Peer Support Network")
    assert set(json.loads(page.locator("#explorer-viewer").get_attribute("data-regions") or "[]")) == NORTH_REGIONS

    result = run_saved(session, "region-dashboard")
    assert "errors" not in result, result
    assert dashboard_regions(result) == NORTH_REGIONS
    groups = [group for region in result["data"]["regions"]["nodes"] for group in region["groups"]["nodes"]]
    assert groups, "the coordinator's regions have groups"
    assert all(len(group["sessions"]["nodes"]) <= 20 for group in groups)
    response_pane = page.locator(".graphiql-response")
    expect(response_pane).to_contain_text("Tyneside")
    expect(response_pane).not_to_contain_text("Teesside")

    # The token is in memory only: sent as a bearer header, never stored by the page.
    assert bearer
    assert all(value.startswith("Bearer ") for value in bearer)
    token = bearer[-1].removeprefix("Bearer ")
    stored = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert token not in stored
    assert stored == "[[],[]]", f"nothing is left in web storage after the redirect round trip: {stored}"
    assert token not in page.url
    assert session.csp_violations() == []

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))


def test_another_coordinator_sees_other_regions(session: Session) -> None:
    session.sign_in(COORDINATOR_SOUTH)
    wait_until_ready(session)
    result = run_saved(session, "region-dashboard")
    assert dashboard_regions(result) == {"Teesside"}


def test_wrong_password_shows_a_clear_message(session: Session) -> None:
    session.sign_in(COORDINATOR_NORTH, password="not-the-password")
    page = session.page
    expect(page.get_by_role("alert")).to_contain_text("Email or password is incorrect")
    assert urlsplit(page.url).path == "/login"
    expect(page.locator("#password")).to_have_value("")
    assert page.locator("#explorer").count() == 0


def test_works_with_every_other_host_blocked(session: Session) -> None:
    page = session.page
    own = f"127.0.0.1:{session.server.port}"
    attempted: list[str] = []

    def only_this_server(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == own:
            route.continue_()
        else:
            attempted.append(request.url)
            route.abort("blockedbyclient")

    page.context.route("**/*", only_this_server)
    session.sign_in(COORDINATOR_NORTH)
    wait_until_ready(session)

    for operation in ("upcoming-sessions", "attendance-this-month", "checks-expiring", "group-rosters"):
        result = run_saved(session, operation)
        assert "errors" not in result, (operation, result)
    month = run_saved(session, "attendance-this-month")
    assert {region["name"] for region in month["data"]["regions"]["nodes"]} == NORTH_REGIONS

    alerts = run_saved(session, "safeguarding-alerts")
    assert "errors" not in alerts, alerts
    assert "totalCount" in alerts["data"]["safeguardingAlerts"]

    # The docs pane shows field descriptions, which name the scopes they require.
    page.locator(".graphiql-sidebar button[aria-label='Show Documentation Explorer']").click()
    docs = page.locator(".graphiql-doc-explorer")
    docs.get_by_text("Query", exact=True).first.click()
    expect(docs).to_contain_text("Regions the caller may read")
    expect(docs).to_contain_text("programme:read")

    # Other parts of GraphiQL that draw panes and popups: history, autocompletion.
    page.locator(".graphiql-sidebar button[aria-label='Show History']").click()
    expect(page.locator(".graphiql-history")).to_be_visible()
    page.locator(".graphiql-query-editor .CodeMirror").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nquery More { vie")
    page.keyboard.press("Control+Space")
    expect(page.locator(".CodeMirror-hints")).to_contain_text("viewer")
    page.keyboard.press("Escape")
    assert session.csp_violations() == []

    # GraphiQL's dialogs (Radix) lock page scrolling with an injected <style> element, which style-src 'self'
    # blocks. Nothing else depends on it and this page's body never scrolls, so the dialog still works.
    page.locator(".graphiql-sidebar button[aria-label='Open settings dialog']").click()
    expect(page.get_by_role("dialog")).to_contain_text("Settings")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert all("style-src" in line for line in session.csp_violations())

    assert attempted == []
    # The policy is really enforced (and violations really reach the console this test reads).
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                  " document.body.appendChild(s); }")  # fmt: skip
    assert page.evaluate("() => window.injected") is None
    page.wait_for_timeout(200)
    assert any("script-src" in line for line in session.csp_violations())


def test_sign_out_ends_access(session: Session) -> None:
    page = session.page
    issued: list[dict[str, Any]] = []
    page.on("response", lambda r: issued.append(r.json()) if r.url.endswith("/oauth/token") and r.ok else None)
    session.sign_in(COORDINATOR_NORTH)
    wait_until_ready(session)
    assert issued, "the page obtained tokens from /oauth/token"
    access, refresh = issued[-1]["access_token"], issued[-1]["refresh_token"]

    with httpx.Client(base_url=session.server.base_url) as client:
        viewer = client.post(
            "/graphql", json={"query": "{ viewer { role } }"}, headers={"Authorization": f"Bearer {access}"}
        )
        assert viewer.status_code == 200
        assert viewer.json()["data"]["viewer"]["role"] == "COORDINATOR"

        page.click("#explorer-sign-out")
        expect(page.get_by_role("heading")).to_contain_text("signed out")

        after = client.post(
            "/graphql", json={"query": "{ viewer { role } }"}, headers={"Authorization": f"Bearer {access}"}
        )
        assert after.status_code == 401
        reused = client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "programme-explorer"},
        )
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"

    page.goto(session.url("/graphql"))
    assert re.search(r"/login\?next=(/|%2F)graphql$", page.url), page.url


def test_token_is_refreshed_before_it_expires(session: Session) -> None:
    page = session.page
    page.clock.install()
    grants: list[str] = []
    page.on(
        "request",
        lambda r: grants.append((r.post_data or "").split("grant_type=")[1].split("&")[0])
        if r.url.endswith("/oauth/token") else None,
    )  # fmt: skip
    session.sign_in(COORDINATOR_NORTH)
    wait_until_ready(session)
    assert grants == ["authorization_code"]

    with page.expect_response(lambda r: r.url.endswith("/oauth/token")) as refreshed:
        page.clock.run_for("15:00")  # access tokens for people live 15 minutes; the page refreshes before
    assert refreshed.value.ok
    assert grants == ["authorization_code", "refresh_token"]
    result = run_saved(session, "region-dashboard")
    assert dashboard_regions(result) == NORTH_REGIONS


def test_the_page_needs_a_session(session: Session) -> None:
    response = session.page.goto(session.url("/graphql"))
    assert response is not None
    assert urlsplit(session.page.url).path == "/login"
    expect(session.page.locator("#email")).to_be_visible()
    assert EVERY_NORTHERN_REGION.isdisjoint(session.page.content().split())

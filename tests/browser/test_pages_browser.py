"""The sign-in and sign-out pages in a real browser at a phone's width: styled like the explorer, from this
server's own stylesheet, nothing wider than the screen, and screenshots kept in ``artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import ARTIFACTS, COORDINATOR_NORTH, DEMO_PASSWORD, LiveServer

pytestmark = pytest.mark.browser
PHONE = {"width": 360, "height": 740}


@pytest.fixture
def phone(browser: Browser, live_server: LiveServer) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    yield page, requested
    context.close()


def fits_the_screen(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways at {PHONE['width']} px: {widths}"


def test_sign_in_and_sign_out_pages_at_360_px(phone: tuple[Page, list[str]], live_server: LiveServer) -> None:
    page, requested = phone
    page.goto(f"{live_server.base_url}/login")
    expect(page.locator(".page-bar")).to_contain_text("Programme explorer")
    # Styled by the stylesheet (the bar's background is the explorer's), which came from this server.
    assert page.evaluate("() => getComputedStyle(document.querySelector('.page-bar')).backgroundColor") == (
        "rgb(246, 248, 250)"
    )
    assert all(url.startswith(live_server.base_url) or url.startswith("data:") for url in requested), requested
    assert any(url.split("?")[0].endswith("/explorer/static/pages.css") for url in requested)
    fits_the_screen(page)
    box = page.locator("#email").bounding_box()
    assert box is not None
    assert box["width"] >= 280
    assert box["x"] + box["width"] <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in-360.png"), full_page=True)

    page.fill("#email", COORDINATOR_NORTH)
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Email or password is incorrect")
    fits_the_screen(page)
    page.screenshot(path=str(ARTIFACTS / "sign-in-error-360.png"), full_page=True)

    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    # Signed in once the explorer is ready (before that the page is still on its way through /oauth/authorize,
    # whose redirect would overtake a sign-out posted meanwhile).
    expect(page.locator("#explorer.explorer-ready")).to_be_attached()
    page.click("#explorer-sign-out")
    expect(page.get_by_role("heading")).to_contain_text("You have signed out")
    fits_the_screen(page)
    page.screenshot(path=str(ARTIFACTS / "signed-out-360.png"), full_page=True)

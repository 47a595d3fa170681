"""The evaluator's report opens offline in chromium: saved to a file, opened with the network cut, nothing
fetched, charts drawn; a screenshot goes to ``artifacts/report.png``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Route

from .conftest import ARTIFACTS, LiveServer

pytestmark = pytest.mark.browser


def evaluator_token(server: LiveServer) -> str:
    """A client of the demo evaluation project (``clients create`` against the server's database)."""
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", "clients", "create",
               "--organisation", "northern-peer-support", "--name", "Report reader", "--scope", "evaluation:read",
               "--evaluation-project", "demo-evaluation", "--json"]  # fmt: skip
    created = subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=120, check=True)
    client = json.loads(created.stdout)
    answer = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "evaluation:read"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def test_report_opens_offline_and_draws_its_charts(browser: Browser, live_server: LiveServer, tmp_path: Path) -> None:
    token = evaluator_token(live_server)
    response = httpx.get(
        f"{live_server.base_url}/exports/report.html", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert response.status_code == 200
    saved = tmp_path / "report.html"
    saved.write_bytes(response.content)

    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True, java_script_enabled=False)
    requested: list[str] = []

    def only_the_file(route: Route) -> None:
        requested.append(route.request.url)
        if route.request.url == saved.as_uri():
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_file)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("requestfailed", lambda request: console.append(f"failed: {request.url}"))
    page.goto(saved.as_uri())
    assert page.locator("h1").inner_text().startswith("Outcome summary: ")
    sections = page.locator("section")
    assert sections.count() >= 1
    charts = page.locator("svg.dose-chart")
    assert charts.count() >= 1
    box = charts.first.bounding_box()
    assert box is not None
    assert box["width"] == 562  # 560 and a 1px border each side
    assert box["height"] == 262
    assert charts.first.locator("circle").count() + charts.first.locator("text", has_text="suppressed").count() >= 1
    assert requested == [saved.as_uri()]
    assert console == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    context.close()

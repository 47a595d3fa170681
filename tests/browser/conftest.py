"""A real server and a real browser for the explorer's end-to-end tests.

The server is ``programme-api serve`` in a subprocess on a free 127.0.0.1 port, over a temporary SQLite
database built with ``db upgrade`` and ``demo load``, with ``PROGRAMME_API_ISSUER`` set to its own address (the
explorer's redirect URI is ``{ISSUER}/graphql``). A subprocess keeps uvicorn's event loop apart from
pytest-asyncio's, and the Playwright *sync* API is used from plain test functions for the same reason.

The browser is Debian's ``/usr/bin/chromium`` (installed by ``.ci/run``), never a downloaded one. When it is
missing the tests skip on a laptop but fail under ``CI=true``: CI must prove the explorer works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..api import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
DEMO_PASSWORD = "demo-password-1"
COORDINATOR_NORTH = "coordinator.north@northern-peer-support.example"
COORDINATOR_SOUTH = "coordinator.south@northern-peer-support.example"


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    port: int
    env: dict[str, str] = field(default_factory=dict)


def _cli(*arguments: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", *arguments]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if completed.returncode != 0:
        pytest.fail(f"programme-api {' '.join(arguments)} failed: {completed.stdout}{completed.stderr}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``programme-api serve`` over a migrated database holding the demo data."""
    directory = tmp_path_factory.mktemp("live")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PROGRAMME_API_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'programme.db'}",
        "PROGRAMME_API_SECRET_KEY_FILE": str(directory / "keys.json"),
        "PROGRAMME_API_ISSUER": base_url,
        "PROGRAMME_API_LOG_FORMAT": "console",
    }
    env.pop("PROGRAMME_API_REDIS_URL", None)
    _cli("db", "upgrade", env=env)
    _cli("demo", "load", env=env)
    log = (directory / "server.log").open("w")
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-c", "from programme_api.cli import main; main()", *serve],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90  # a loaded CI machine can take a while to import and start
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"server did not start: {(directory / 'server.log').read_text()}")
            time.sleep(0.2)
        yield LiveServer(base_url=base_url, port=port, env=env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium driven by Playwright's sync API.

    Module-scoped on purpose: while Playwright's sync API is open its event loop counts as running in this
    thread, and pytest-asyncio could not run the async tests collected after this module.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message + " (CI=true: browser tests may not be skipped)")
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Session:
    """One test's browser tab on the live server, and what its console said (CSP violations show up there)."""

    page: Page
    server: LiveServer
    console: list[str]

    def url(self, path: str) -> str:
        return self.server.base_url + path

    def sign_in(self, email: str, password: str = DEMO_PASSWORD) -> None:
        """Open /graphql as a person would: it sends us to /login, and back after signing in."""
        self.page.goto(self.url("/graphql"))
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line or "Refused to" in line]


@pytest.fixture
def session(browser: Browser, live_server: LiveServer) -> Iterator[Session]:
    """A fresh browser context (no cookies, no storage) per test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(15_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield Session(page=page, server=live_server, console=console)
    context.close()

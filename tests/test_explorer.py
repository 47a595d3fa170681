"""The explorer page over HTTP: who gets it, its security headers, and that it only loads our files.

These tests need no database rows: a signed-in person is stood in for by replacing the session lookup, and
the real session check is left in place for the signed-out cases. The browser tests drive the whole flow.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from programme_api.app import create_app
from programme_api.config import Settings
from programme_api.domain.models import User
from programme_api.explorer import page as explorer

STATIC = Path(explorer.__file__).parent / "static"
REPO = Path(__file__).resolve().parents[1]
SERVED = sorted(path.name for path in STATIC.iterdir() if path.is_file())
VENDORED = ("graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js")
OURS = ("explorer.js", "explorer.css")
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
#: Absolute URLs that appear in the vendored bundles as data, never fetched: XML namespaces, and links in
#: licence banners and error messages.
NOT_FETCHED_HOSTS = frozenset(
    {"www.w3.org", "github.com", "reactjs.org", "en.wikipedia.org", "commonmark.org", "codemirror.net"}
)


def absolute_urls(text: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"'`)<>]+", text))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key_file=tmp_path / "keys.json",
        issuer="http://explorer.test",
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer.test") as http:
        yield http


@pytest.fixture
def signed_in(monkeypatch: pytest.MonkeyPatch) -> User:
    person = User(
        id=uuid.uuid4(),
        organisation_id=uuid.uuid4(),
        email="coordinator@example.org",
        display_name='Ann <script>alert("x")</script>',
        is_active=True,
    )

    async def signed_in_user(_request: Any) -> User:
        return person

    monkeypatch.setattr(explorer, "_signed_in_user", signed_in_user)
    return person


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/graphql-response+json, application/json;q=0.9", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=oops", False),
    ],
)
def test_prefers_html(accept: str, expected: bool) -> None:
    assert explorer.prefers_html(accept) is expected


async def test_without_a_session_the_page_redirects_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/graphql"
    assert response.headers["cache-control"] == "no-store"


async def test_a_forged_session_cookie_redirects_to_login(client: httpx.AsyncClient) -> None:
    client.cookies.set("programme_session", "eyJ1aWQiOiIxIn0.forged.signature")
    response = await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/graphql"


async def test_graphql_clients_still_get_graphql(client: httpx.AsyncClient) -> None:
    for accept in ("*/*", "application/json"):
        response = await client.get("/graphql", params={"query": "{ viewer { subject } }"}, headers={"Accept": accept})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/json")
    posted = await client.post("/graphql", json={"query": "{ viewer { subject } }"}, headers={"Accept": BROWSER_ACCEPT})
    assert posted.status_code != 303


async def test_signed_in_page_and_its_headers(client: httpx.AsyncClient, signed_in: User) -> None:
    response = await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    policy = {}
    for directive in headers["content-security-policy"].split(";"):
        name, _, value = directive.strip().partition(" ")
        policy[name] = value
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe" not in headers["content-security-policy"]


async def test_page_has_no_inline_script_or_style_and_only_local_assets(
    client: httpx.AsyncClient, signed_in: User
) -> None:
    html = (await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})).text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert [attributes for attributes, _ in scripts]
    for attributes, body in scripts:
        assert body.strip() == "", "no inline script"
        assert re.search(r'src="/explorer/static/[\w.-]+\?v=[0-9a-f]{12}"', attributes)
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son\w+=", html) is None, "no inline event handlers"
    assert absolute_urls(html) == {"http://explorer.test/graphql"}, "only the redirect URI, which is our own"
    assert all(href.startswith(("/explorer/static/", "data:")) for href in re.findall(r'href="([^"]*)"', html))
    assert 'data-redirect-uri="http://explorer.test/graphql"' in html
    assert 'data-client-id="programme-explorer"' in html
    # People's names are data, never markup.
    assert "<script>alert" not in html
    assert "Ann &lt;script&gt;" in html


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("graphiql.min.js", "javascript"),
        ("react.production.min.js", "javascript"),
        ("react-dom.production.min.js", "javascript"),
        ("explorer.js", "javascript"),
        ("graphiql.min.css", "text/css"),
        ("explorer.css", "text/css"),
    ],
)
async def test_static_files_are_served_with_their_types(client: httpx.AsyncClient, name: str, media_type: str) -> None:
    response = await client.get(explorer.asset_url(name))
    assert response.status_code == 200
    assert media_type in response.headers["content-type"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in response.headers["cache-control"]
    assert response.content == (STATIC / name).read_bytes()
    unversioned = await client.get(f"/explorer/static/{name}")
    assert unversioned.headers["cache-control"] == "no-cache"


async def test_static_files_stay_in_their_folder(client: httpx.AsyncClient) -> None:
    for path in ("/explorer/static/../page.py", "/explorer/static/%2e%2e/page.py", "/explorer/static/missing.js"):
        response = await client.get(path)
        assert response.status_code == 404, path


@pytest.mark.parametrize("name", SERVED)
def test_no_served_file_loads_anything_from_elsewhere(name: str) -> None:
    text = (STATIC / name).read_text(encoding="utf-8")
    if name in OURS or name.endswith(".css"):
        assert absolute_urls(text) == set(), name
    if name.endswith(".css"):
        assert "@import" not in text
        assert all(target.startswith(("data:", "'data:", '"data:')) for target in re.findall(r"url\(([^)]*)\)", text))
    if name.endswith(".js"):
        hosts = {re.sub(r"^https?://", "", url).split("/")[0] for url in absolute_urls(text)}
        assert hosts <= NOT_FETCHED_HOSTS, hosts - NOT_FETCHED_HOSTS
    for cdn in ("unpkg", "jsdelivr", "cdnjs", "esm.sh", "googleapis", "gstatic"):
        assert cdn not in text.lower(), f"{name} names the CDN {cdn!r}"


def test_template_has_no_external_url() -> None:
    template = (Path(explorer.__file__).parent / "templates" / "explorer.html").read_text()
    assert absolute_urls(template) == set()


def test_vendored_files_match_their_record_and_carry_licences() -> None:
    record = (STATIC / "VENDORED.md").read_text()
    for name in VENDORED:
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() in record, name
    for licence in ("LICENSE-graphiql", "LICENSE-react", "LICENSE-react-dom"):
        assert "MIT License" in (STATIC / licence).read_text()
    script = (REPO / "scripts" / "vendor-graphiql.sh").read_text()
    for package, version in re.findall(r"\| (graphiql|react|react-dom) \| ([0-9.]+) \|", record):
        variable = package.upper().replace("-", "_") + "_VERSION"
        assert f'{variable}="{version}"' in script


async def test_schema_for_the_docs_pane_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.get("/explorer/schema.json")
    assert response.status_code == 401


async def test_schema_for_the_docs_pane_carries_descriptions(client: httpx.AsyncClient, signed_in: User) -> None:
    response = await client.get("/explorer/schema.json")
    assert response.status_code == 200
    schema = response.json()["data"]["__schema"]
    query = next(kind for kind in schema["types"] if kind["name"] == "Query")
    regions = next(field for field in query["fields"] if field["name"] == "regions")
    assert "Requires `programme:read`" in regions["description"]

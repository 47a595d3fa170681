"""The coordinators' explorer: GraphiQL served at ``GET /graphql`` (``Accept: text/html``) from vendored files.

Why it looks like this:

- Every script, stylesheet and font comes from ``/explorer/static`` (graphiql 3's UMD build and React 18, copied
  from npm by ``scripts/vendor-graphiql.sh``), so the page works on offline and locked-down networks and can
  run under ``script-src 'self'``. Configuration reaches ``explorer.js`` through ``data-`` attributes, never an
  inline script.
- The page is only for people who signed in at ``/login``: without a valid session cookie it redirects there.
  The cookie never authorises GraphQL itself; ``explorer.js`` runs the authorization-code + PKCE flow for the
  built-in public client ``programme-explorer`` and sends the resulting bearer token, like any other app.
- The schema for GraphiQL's docs pane comes from ``/explorer/schema.json`` (signed-in people only) instead of
  an introspection query through ``/graphql``: GraphiQL's introspection query nests 15 levels and the API's
  depth limit (10) rightly refuses it there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final

import orjson
import sqlalchemy as sa
from graphql import introspection_from_schema
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from ..db import read_only_session
from ..domain.models import User
from ..domain.principal import ALL_SCOPES
from ..domain.tenancy import bind_tenant_of
from ..oauth.clients import EXPLORER_CLIENT_ID, explorer_redirect_uri
from ..runtime import Runtime
from ..schema import schema
from ..web.login import read_session
from .operations import PAGE_DATA as SAVED_PAGE_DATA

HERE: Final = Path(__file__).parent
STATIC_DIR: Final = HERE / "static"
STATIC_PREFIX: Final = "/explorer/static"
SCHEMA_PATH: Final = "/explorer/schema.json"
LOGIN_REDIRECT: Final = "/login?next=/graphql"

#: No ``'unsafe-inline'`` anywhere: graphiql 3, CodeMirror 5 and React set styles through the CSSOM
#: (``element.style``), which CSP does not restrict. The one exception found: GraphiQL's settings and
#: short-keys dialogs (Radix, through react-remove-scroll-bar) inject a ``<style>`` element to stop the page
#: scrolling behind the dialog. Its content depends on the scrollbar width, so no hash fits; it is blocked,
#: and nothing is lost because this page's body never scrolls. The browser tests fail on any other violation.
#: ``font-src data:``: graphiql.min.css embeds its fonts (Roboto, Fira Code) as ``data:`` URIs, so they are
#: served inside our own stylesheet and nothing is fetched from elsewhere.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Accept, Cookie",
}
STATIC_HEADERS: Final[Mapping[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Scripts in load order: React, ReactDOM, GraphiQL (needs both), then ours.
SCRIPTS: Final = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "explorer.js")
STYLESHEETS: Final = ("graphiql.min.css", "explorer.css")
# The explorer's saved operations (per role), fetched by explorer.js; tests validate each against the schema.
SAVED_OPERATIONS: Final = "saved-operations.json"
#: The explorer asks for every scope; the authorization server cuts the grant to what the person's role allows.
EXPLORER_SCOPE: Final = " ".join(sorted(ALL_SCOPES))

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
)


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a page rather than a GraphQL response (browsers' navigations do).

    ``text/html`` must be named explicitly and weigh at least as much as any JSON type named explicitly; a bare
    ``*/*`` (curl, most HTTP libraries) keeps getting GraphQL.
    """
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media_type, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type.lower()] = max(weight, weights.get(media_type.lower(), 0.0))
    html = weights.get("text/html", 0.0)
    json = max(weights.get("application/json", 0.0), weights.get("application/graphql-response+json", 0.0))
    return html > 0.0 and html >= json


@cache
def asset_version(name: str) -> str:
    """A content hash for cache busting: a new deploy changes the URL, so browsers never mix old and new files."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    return f"{STATIC_PREFIX}/{name}?v={asset_version(name)}"


async def _signed_in_user(request: Request) -> User | None:
    """The active person behind the session cookie; a deactivated account counts as signed out."""
    session = await read_session(request)
    if session is None:
        return None
    async with read_only_session(Runtime.of(request).session_maker) as db:
        await bind_tenant_of(db, "user", str(session.user_id))
        user: User | None = await db.scalar(sa.select(User).where(User.id == session.user_id, User.is_active))
    return user


async def explorer_page(request: Request) -> Response:
    """GraphiQL for a signed-in person; everyone else goes to ``/login`` and comes back here."""
    user = await _signed_in_user(request)
    if user is None:
        return RedirectResponse(LOGIN_REDIRECT, status_code=303, headers={"Cache-Control": "no-store"})
    issuer = Runtime.of(request).settings.issuer
    html = _templates.get_template("explorer.html").render(
        scripts=[asset_url(name) for name in SCRIPTS],
        stylesheets=[asset_url(name) for name in STYLESHEETS],
        client_id=EXPLORER_CLIENT_ID,
        redirect_uri=explorer_redirect_uri(issuer),
        scope=EXPLORER_SCOPE,
        schema_url=SCHEMA_PATH,
        operations_url=asset_url(SAVED_OPERATIONS),
        display_name=user.display_name,
        email=user.email,
        saved_operations=SAVED_PAGE_DATA,
    )
    return Response(html, media_type="text/html", headers=dict(PAGE_HEADERS))


@lru_cache(maxsize=1)
def _schema_document() -> bytes:
    return orjson.dumps({"data": introspection_from_schema(schema._schema, descriptions=True)})


async def schema_json(request: Request) -> Response:
    """The introspection result for GraphiQL's docs pane and editor hints, for signed-in people only.

    It carries every type and field description (and so the scopes each field requires), exactly what
    introspection through ``/graphql`` would answer, computed once per process.
    """
    if await _signed_in_user(request) is None:
        return Response(
            orjson.dumps({"errors": [{"message": "sign in at /login to read the schema"}]}),
            status_code=401,
            media_type="application/json",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )
    return Response(
        _schema_document(),
        media_type="application/json",
        headers={"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
    )


class HardenedStaticFiles:
    """``StaticFiles`` plus ``nosniff`` and a closed CSP on every answer, and long caching for hashed URLs.

    Only files in ``static/`` are reachable (StaticFiles refuses paths that leave its directory). A URL that
    carries ``?v=<hash>`` never changes content, so it may be cached for a year; without it browsers revalidate.
    """

    def __init__(self, directory: Path) -> None:
        self.files = StaticFiles(directory=directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        versioned = b"v=" in scope.get("query_string", b"")
        cache = "public, max-age=31536000, immutable" if versioned else "no-cache"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers += [(name.lower().encode(), value.encode()) for name, value in STATIC_HEADERS.items()]
                if message.get("status") in (200, 304):
                    headers.append((b"cache-control", cache.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.files(scope, receive, send_with_headers)


routes: list[BaseRoute] = [
    Mount(STATIC_PREFIX, app=HardenedStaticFiles(STATIC_DIR), name="explorer-static"),
    Route(SCHEMA_PATH, schema_json, methods=["GET"]),
]

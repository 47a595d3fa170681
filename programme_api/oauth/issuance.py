"""The token endpoint's common case, client credentials that check out, without a round trip to spare.

A machine client asking for a token is the endpoint's hot path (partner apps ask for one per job, some per
request). authlib's general machinery costs a session, a transaction and four statements per token; this
path costs one statement on PostgreSQL:

- the client comes from the worker's client view (``views.py``), read from the database only the first
  time and again after a change to the client is announced (``invalidation.py``); a disabled client is
  never remembered;
- its secret is a 256-bit random value checked against its SHA-256 hash (no slow KDF is needed for a
  generated high-entropy secret, ``domain/passwords.py``);
- the token row and its audit event are written by one statement that also binds the transaction to the
  client's organisation (row-level security), sent alone in autocommit on a pooled driver connection, and
  shared with the other tokens waiting at the same moment (``token_writes.py``).

It answers only a request it is sure of: exactly one way of client authentication, no parameter beyond
``grant_type``, ``scope`` and the credentials, each once, a client that checks out and a scope it may have.
Anything else returns ``None`` and the request goes to authlib (``server.py``), which gives every refusal
its exact RFC 6749 answer; the success answer here is the one authlib would give.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from authlib.common.security import is_secure_transport
from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..db import read_only_session
from ..domain.models import AuditEvent, OAuthClient, OAuthToken, utcnow
from ..domain.tenancy import bind_tenant_of
from ..domain.values import text_problem
from ..metrics import TOKENS_ISSUED
from ..request_context import statement_sent
from ..runtime import Runtime
from ..web.request_id import current_request_id
from .clients import ClientRecord, client_record, format_scope, is_explorer_anchor, parse_scope
from .invalidation import client_tag
from .service import oauth_service
from .store import issuance_values
from .token_writes import TokenWriter, write_batch
from .tokens import access_token_lifetime
from .views import views_of

GRANT_TYPE = "client_credentials"
FORM = "application/x-www-form-urlencoded"
_PARAMETERS = frozenset({"grant_type", "scope", "client_id", "client_secret"})


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str, str] | None:
    """``(method, client id, secret)`` when the request authenticates exactly one way, else ``None``."""
    basic_id, basic_secret = extract_basic_authorization(request.headers)
    posted = "client_id" in form or "client_secret" in form
    if basic_id and basic_secret and not posted:
        return "client_secret_basic", basic_id, basic_secret
    if "authorization" not in request.headers and form.get("client_id") and form.get("client_secret"):
        return "client_secret_post", form["client_id"], form["client_secret"]
    return None


async def _plain_form(request: Request) -> dict[str, str] | None:
    """The parameters of a plain client-credentials POST (nothing else, nothing twice, no query), or ``None``.

    Read straight from the urlencoded body: anything the strict reading here does not take (another media
    type, ``;`` as a separator, a value that is not UTF-8) goes to authlib, which reads forms its own way.
    """
    if request.method != "POST" or request.url.query or not _secure_issuer(Runtime.of(request).settings.issuer):
        return None
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        return None
    try:
        items = parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    form = dict(items)
    if len(form) != len(items) or not set(form) <= _PARAMETERS or form.get("grant_type") != GRANT_TYPE:
        return None
    return form


@lru_cache(maxsize=4)
def _secure_issuer(issuer: str) -> bool:
    """authlib's transport rule for the token endpoint (https, or plain http on loopback)."""
    return bool(is_secure_transport(f"{issuer}/oauth/token"))


async def _client(request: Request, client_id: str) -> ClientRecord | None:
    """The active client from the worker's view, or from the database (then remembered).

    Read under its own organisation's binding: as the service's role, row-level security shows no client to an
    unbound transaction, and every token would then take the general path (and its five round trips).
    """
    if text_problem(client_id) is not None:
        return None  # no client answers to it, and the database could not even compare it
    views = views_of(request)
    cached = views.clients.get(client_id)
    if cached is not None and views.channel.trusts(cached.loaded_at):
        return cached.value
    epoch = views.clients.epoch
    async with read_only_session(Runtime.of(request).session_maker) as session:
        await bind_tenant_of(session, "client", client_id)
        row = await session.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    if row is None or row.revoked_at is not None or is_explorer_anchor(row.client_id):
        return None
    record = client_record(row)
    views.clients.put(client_id, record, (client_tag(row.id),), epoch)
    return record


async def try_client_credentials(request: Request) -> Response | None:
    """The token response for a plain, valid client-credentials request; ``None`` hands it to authlib."""
    form = await _plain_form(request)
    if form is None:
        return None
    credentials = _credentials(request, form)
    if credentials is None:
        return None
    method, client_id, secret = credentials
    client = await _client(request, client_id)
    if client is None or client.pk is None or client.organisation_id is None:
        return None
    if not (
        client.check_endpoint_auth_method(method, "token")
        and client.check_client_secret(secret)
        and client.check_grant_type(GRANT_TYPE)
    ):
        return None
    requested = form.get("scope")
    if client.get_allowed_scope(requested) is None:
        return None
    granted = (parse_scope(requested) or client.scopes) & client.scopes
    if not granted:
        return None

    service = oauth_service(request)
    now = utcnow()
    issued = service.tokens.issue(
        client_id=client.client_id,
        subject=client.client_id,
        scope=format_scope(granted),
        lifetime=access_token_lifetime(for_person=False, confidential_client=True),
        now=now,
        with_refresh_token=False,
    )
    token_row, event = issuance_values(
        issued,
        client=client,
        client_pk=client.pk,
        organisation_id=client.organisation_id,
        user=None,
        grant_type=GRANT_TYPE,
        family_id=uuid.uuid4(),
        refresh_expires_at=None,
        now=now,
        request_id=getattr(request.state, "request_id", None) or current_request_id(),
    )
    await _write(request, token_row, event)
    TOKENS_ISSUED.labels(GRANT_TYPE).inc()
    return JSONResponse(issued.response(), headers=dict(default_json_headers))


async def _write(request: Request, token_row: dict[str, Any], event: dict[str, Any]) -> None:
    runtime = Runtime.of(request)
    bind: AsyncEngine | AsyncConnection = runtime.session_maker.kw.get("bind", runtime.engine)
    if bind.dialect.name != "postgresql":
        async with runtime.session_maker() as session:
            session.add_all([OAuthToken(**token_row), AuditEvent(**event)])
            await session.commit()
        return
    if isinstance(bind, AsyncConnection):  # the tests' rolled-back transaction: no writer of its own
        await write_batch(bind, [(token_row, event)])
    else:
        await token_writer(request, bind).write(token_row, event)
    statement_sent()  # past SQLAlchemy's events, so counted here (a shared statement counts for each request)


def token_writer(request: Request, engine: AsyncEngine) -> TokenWriter:
    """This app's token writer, started the first time a token is written."""
    state = request.app.state
    writer: TokenWriter | None = getattr(state, "token_writer", None)
    if writer is None:
        writer = state.token_writer = TokenWriter(engine)
    return writer

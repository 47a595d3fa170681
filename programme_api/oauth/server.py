"""The one adapter between Starlette and authlib's synchronous ``AuthorizationServer``.

Per request: the form is awaited and turned into an ``OAuth2Request`` (parameters from the body for POST,
from the query for GET; the URI is rebuilt on ``ISSUER``, the public address, so authlib's HTTPS check sees
what clients see behind a TLS-terminating proxy). Then a fresh server object, bound to that request's
session, runs inside ``AsyncSession.run_sync``: authlib's callbacks query the database synchronously while
the driver stays asynchronous, so the event loop is never blocked. The result comes back as
``(status, body, headers)`` and becomes a Starlette response.

The unit of work is decided here, once: committed when authlib answered without an error, rolled back when
it refused (so a refused request leaves nothing behind), except for a replayed code or refresh token, whose
family revocation is committed with the refusal.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidScopeError, OAuth2Error
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..domain.models import utcnow
from ..domain.principal import ALL_SCOPES, effective_scopes
from ..metrics import TOKENS_ISSUED
from ..runtime import Runtime
from ..web.request_id import current_request_id
from . import invalidation, store
from .clients import ClientRecord, format_scope, parse_scope
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant, S256CodeChallenge
from .service import oauth_service
from .tokens import IssuedToken, access_token_lifetime
from .users import UserRecord

T = TypeVar("T")


@dataclass(frozen=True)
class OAuthResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name.lower() == "location"), None)

    def to_starlette(self) -> Response:
        headers = dict(self.headers)
        if self.location is not None:
            return RedirectResponse(self.location, status_code=self.status, headers=headers)
        return JSONResponse(self.body if isinstance(self.body, dict) else {}, status_code=self.status, headers=headers)


class StarletteOAuth2Payload(OAuth2Payload):  # type: ignore[misc]
    """Request parameters; repeated ones are kept so authlib can refuse them."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in items:
            self._data.setdefault(name, value)
            self._datalist[name].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, method: str, uri: str, headers: Any, query: list[tuple[str, str]], form: list[tuple[str, str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(reversed(query))
        self._form = dict(reversed(form))
        self.payload = StarletteOAuth2Payload(form if method == "POST" else query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def oauth2_request(request: Request) -> StarletteOAuth2Request:
    """Await the body and build authlib's request (raises ``InsecureTransportError`` for a plain-HTTP issuer)."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        parsed = await request.form()
        form = [(name, value) for name, value in parsed.multi_items() if not isinstance(value, UploadFile)]
    query = request.url.query
    uri = f"{Runtime.of(request).settings.issuer}{request.url.path}" + (f"?{query}" if query else "")
    return StarletteOAuth2Request(request.method, uri, request.headers, list(request.query_params.multi_items()), form)


class ProgrammeAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's server, bound to one request's ``OAuthContext``; built fresh for every request."""

    def __init__(self, context: store.OAuthContext) -> None:
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        self.context = context
        self.pending: list[IssuedToken] = []
        self.saved_family_id: uuid.UUID | None = None
        self.last_error: OAuth2Error | None = None
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge()])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)

    @property
    def keeps_writes(self) -> bool:
        return self.last_error is None or isinstance(self.last_error, store.CredentialReplayed)

    def query_client(self, client_id: str) -> ClientRecord | None:
        return store.query_client(self.context, client_id)

    def generate_token(
        self,
        grant_type: str,
        client: ClientRecord,
        user: UserRecord | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The single place a token's scope and lifetime are decided: requested ∩ client ∩ role, never wider."""
        granted = (parse_scope(scope) or client.scopes) & client.scopes
        if user is not None:
            granted = effective_scopes(granted, user.role)
        if not granted:
            raise InvalidScopeError("None of the requested scopes is allowed.")
        issued = self.context.tokens.issue(
            client_id=client.client_id,
            subject=user.get_user_id() if user is not None else client.client_id,
            scope=format_scope(granted),
            lifetime=access_token_lifetime(for_person=user is not None, confidential_client=client.is_confidential),
            now=self.context.now,
            with_refresh_token=include_refresh_token,
        )
        self.pending.append(issued)
        return issued.response()

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        issued = self.pending.pop()
        refreshed: store.TokenRecord | None = request.refresh_token
        self.saved_family_id = store.save_token(
            self.context,
            issued,
            client=request.client,
            user=request.user,
            grant_type=request.payload.grant_type,
            refreshed_family_id=refreshed.row.family_id if refreshed is not None else None,
        )
        TOKENS_ISSUED.labels(request.payload.grant_type).inc()

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints are registered")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> OAuthResponse:
        return OAuthResponse(status, body, list(headers))

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> OAuthResponse:
        self.last_error = error
        response: OAuthResponse = super().handle_error_response(request, error)
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's hook for framework signals; audit events are written by the store instead."""


async def run_authorization_server(request: Request, work: Callable[[ProgrammeAuthorizationServer], T]) -> T:
    """Run ``work`` against a server bound to a new unit of work, and commit or roll back as described above."""
    service = oauth_service(request)
    request_id = getattr(request.state, "request_id", None) or current_request_id()

    def run(session: Session) -> tuple[T, bool]:
        server = ProgrammeAuthorizationServer(store.OAuthContext(session, service.tokens, utcnow(), request_id))
        result = work(server)
        return result, server.keeps_writes

    async with Runtime.of(request).session_maker() as session:
        result, keep = await session.run_sync(run)
        if keep:
            await session.commit()
            await invalidation.publish_committed(session, service.settings.redis_url)
        else:
            await session.rollback()
    return result

"""HTTP endpoints of the authorization server (contract section 5).

``/oauth/authorize`` validates the request before anything else (an unknown client or a redirect URI that
is not registered exactly gets an error page, never a redirect), then sends a person who is not signed in
to ``/login``, then either approves at once (the built-in explorer) or shows a consent page whose form
carries the session's CSRF value. A client bound to another organisation than the person's is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from authlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..domain.principal import ALL_SCOPES
from ..web.login import SignInSession, csrf_matches, read_session, render
from . import store
from .clients import ClientRecord
from .grants import consent_scopes
from .issuance import try_client_credentials
from .server import OAuthResponse, ProgrammeAuthorizationServer, StarletteOAuth2Request, oauth2_request
from .server import run_authorization_server as run
from .service import oauth_service
from .tokens import resource_identifier

SCOPE_DESCRIPTIONS = {
    "programme:read": "See organisations, regions, groups, sessions, facilitators and attendance counts",
    "programme:write": "Create and change regions, groups, schedules, sessions and facilitator assignments",
    "attendance:write": "Record attendance and drop-in counts",
    "participants:read": "See participants' personal details, enrolments and individual attendance",
    "participants:write": "Register and enrol participants, record and withdraw consent",
    "surveys:write": "Submit survey responses",
    "surveys:read": "See identified survey responses within your reach",
    "evaluation:read": "See consented, pseudonymised survey data for an evaluation project",
    "admin": "Manage users, OAuth clients, the audit log and organisation settings",
}
# RFC 3986's characters: a redirect URI with any other (a backslash, a space, a control character) matches no
# registered URI, and browsers disagree on what it means, so it is refused before any comparison.
_URI = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
BAD_REDIRECT_URI = (
    "The redirect_uri is not a valid URI, so it is not one registered for this app; no redirect was made."
)
_OAUTH_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


async def _prepared(request: Request) -> StarletteOAuth2Request | Response:
    try:
        return await oauth2_request(request)
    except InsecureTransportError as error:
        status, body, headers = error()
        return JSONResponse(body, status_code=status, headers=dict(headers))


async def _protocol_response(
    request: Request, work: Callable[[ProgrammeAuthorizationServer, StarletteOAuth2Request], OAuthResponse]
) -> Response:
    """The token, revocation and introspection endpoints differ only in which authlib call answers them."""
    prepared = await _prepared(request)
    if isinstance(prepared, Response):
        return prepared
    result: OAuthResponse = await run(request, lambda server: work(server, prepared))
    return result.to_starlette()


async def token(request: Request) -> Response:
    quick = await try_client_credentials(request)
    if quick is not None:
        return quick
    return await _protocol_response(request, lambda server, prepared: server.create_token_response(prepared))


async def revoke(request: Request) -> Response:
    return await _protocol_response(
        request, lambda server, prepared: server.create_endpoint_response("revocation", prepared)
    )


async def introspect(request: Request) -> Response:
    return await _protocol_response(
        request, lambda server, prepared: server.create_endpoint_response("introspection", prepared)
    )


@dataclass
class AuthorizeOutcome:
    """What ``/oauth/authorize`` decided: a protocol response, a trip to /login, or a consent page."""

    response: OAuthResponse | None = None
    needs_sign_in: bool = False
    client_name: str = ""
    scopes: list[str] = field(default_factory=list)
    email: str = ""


def _decide(
    server: ProgrammeAuthorizationServer,
    oauth_request: StarletteOAuth2Request,
    session: SignInSession | None,
    decision: str | None,
) -> AuthorizeOutcome:
    try:
        grant = server.get_consent_grant(oauth_request, end_user=None)
    except OAuth2Error as error:
        return AuthorizeOutcome(response=server.handle_error_response(oauth_request, error))
    user = store.load_user(server.context, session.user_id if session is not None else None)
    if user is None:
        return AuthorizeOutcome(needs_sign_in=True)
    client: ClientRecord = grant.client
    try:
        granted = consent_scopes(client, user, grant.request.scope)
    except OAuth2Error as refusal:
        refusal.redirect_uri, refusal.state = grant.redirect_uri, oauth_request.payload.state
        return AuthorizeOutcome(response=server.handle_error_response(oauth_request, refusal))
    if client.builtin or decision in ("approve", "deny"):
        grant_user = user if client.builtin or decision == "approve" else None
        return AuthorizeOutcome(response=server.create_authorization_response(oauth_request, grant_user, grant))
    return AuthorizeOutcome(client_name=client.name, scopes=sorted(granted), email=user.email)


async def authorize(request: Request) -> Response:
    prepared = await _prepared(request)
    if isinstance(prepared, Response):
        return prepared
    redirect_uri = prepared.payload.data.get("redirect_uri")
    if isinstance(redirect_uri, str) and not _URI.fullmatch(redirect_uri):
        return _error_page(request, "invalid_request", BAD_REDIRECT_URI)
    session = await read_session(request)
    decision: str | None = None
    if request.method == "POST":
        if session is None or not csrf_matches(session, prepared.form.get("csrf")):
            return _error_page(request, "invalid_request", "Your sign-in has expired. Start again from the app.")
        decision = prepared.form.get("decision")
    outcome: AuthorizeOutcome = await run(request, lambda server: _decide(server, prepared, session, decision))
    if outcome.response is not None:
        if outcome.response.location is not None:
            return outcome.response.to_starlette()
        body = outcome.response.body if isinstance(outcome.response.body, dict) else {}
        return _error_page(request, str(body.get("error", "invalid_request")), str(body.get("error_description", "")))
    if outcome.needs_sign_in:
        if request.method == "POST":
            return _error_page(request, "login_required", "Your sign-in has expired. Start again from the app.")
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    assert session is not None  # a person was found, so there is a session
    parameters = {name: prepared.payload.data[name] for name in _OAUTH_PARAMETERS if name in prepared.payload.data}
    context: dict[str, Any] = {
        "client_name": outcome.client_name,
        "scopes": [(scope, SCOPE_DESCRIPTIONS.get(scope, scope)) for scope in outcome.scopes],
        "email": outcome.email,
        "parameters": parameters,
        "csrf": session.csrf,
    }
    return render(request, "consent.html", context)


def _error_page(request: Request, error: str, description: str) -> Response:
    return render(request, "oauth_error.html", {"error": error, "description": description}, status_code=400)


async def metadata(request: Request) -> Response:
    """RFC 8414 metadata; ``protected_resources`` (RFC 9728 §4) names the audience of every access token."""
    issuer = oauth_service(request).issuer
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "protected_resources": [resource_identifier(issuer)],
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    return JSONResponse(oauth_service(request).keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})


routes: list[BaseRoute] = [
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
]

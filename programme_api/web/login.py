"""People's sign-in (``/login``, ``/logout``) for the explorer and browser apps, and the session it leaves.

The session is a cookie signed with the secret from the key file (itsdangerous, with a max age): it names
the person, the server-side session record (``oauth.sign_in_sessions``: ``/logout`` deletes it, so no copy of
the cookie outlives sign-out) and a random CSRF value that forms posted under it must echo (the consent form
does).
It is ``HttpOnly``, ``SameSite=Lax`` and, when ``ISSUER`` is https, ``Secure``. The sign-in form itself is
protected by a signed double-submit cookie, so another site cannot sign a browser into someone's account.

A failed sign-in says only "Email or password is incorrect", takes the same time whether or not the email
exists (argon2 runs against a dummy hash), is audited, and counts towards the throttle; after too many the
form answers 429 with ``Retry-After`` without checking the password at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..db import read_only_session
from ..domain.models import ActorType
from ..oauth import audit, sign_in_sessions
from ..oauth.lifetimes import SIGN_IN_SESSION_LIFETIME
from ..oauth.service import OAuthService, oauth_service
from ..oauth.throttle import throttle_key
from ..oauth.users import check_password, find_user_id_by_email, normalise_email
from ..runtime import Runtime
from .request_id import current_request_id

SESSION_COOKIE = "programme_session"
LOGIN_CSRF_COOKIE = "programme_login_csrf"
DEFAULT_NEXT = "/graphql"
FAILURE_MESSAGE = "Email or password is incorrect."
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    # The page's one stylesheet is served from this origin (``/explorer/static``); nothing else may load.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

PAGE_STYLESHEET = "pages.css"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class SignInSession:
    user_id: uuid.UUID
    csrf: str
    token: str


def _serializer(service: OAuthService, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(service.keyring.session_secret, salt=f"programme-api.{purpose}")


def _cookie_session(request: Request) -> SignInSession | None:
    """What the session cookie says, if it is present, authentic and not too old (not yet whether it ended)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer(oauth_service(request), "session").loads(
            cookie, max_age=int(SIGN_IN_SESSION_LIFETIME.total_seconds())
        )
        return SignInSession(user_id=uuid.UUID(data["uid"]), csrf=str(data["csrf"]), token=str(data["sid"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


async def read_session(request: Request) -> SignInSession | None:
    """The signed-in person's session: an authentic cookie whose server-side record still exists."""
    session = _cookie_session(request)
    if session is None:
        return None
    async with read_only_session(Runtime.of(request).session_maker) as db:
        live = await sign_in_sessions.is_live(db, session.token, session.user_id)
    return session if live else None


def csrf_matches(session: SignInSession, submitted: object) -> bool:
    return isinstance(submitted, str) and hmac.compare_digest(session.csrf, submitted)


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A server-rendered page with headers that forbid framing, caching and any script or external asset."""
    from ..explorer.page import asset_url

    context = {"page_stylesheet": asset_url(PAGE_STYLESHEET), **context}
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(_SECURITY_HEADERS)
    return response


def safe_next(value: object) -> str:
    """Only same-site paths: an absolute or protocol-relative URL here would be an open redirect."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(character) < 0x20 for character in value):
        return DEFAULT_NEXT
    return value


def _set_cookie(response: Response, service: OAuthService, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=service.secure_cookies, httponly=True, samesite="lax"
    )


def _login_form(
    request: Request, *, next_path: str, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    service = oauth_service(request)
    nonce = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", {"next": next_path, "email": email, "error": error, "csrf": nonce}, status_code=status
    )
    signed = _serializer(service, "login-csrf").dumps(nonce)
    _set_cookie(response, service, LOGIN_CSRF_COOKIE, signed, max_age=3600)
    return response


def _login_csrf_ok(request: Request, submitted: object) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not isinstance(submitted, str):
        return False
    try:
        expected = _serializer(oauth_service(request), "login-csrf").loads(cookie, max_age=3600)
    except BadSignature:
        return False
    return isinstance(expected, str) and hmac.compare_digest(expected, submitted)


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _audit_failure(request: Request, email: str, reason: str) -> None:
    """Failed sign-ins are recorded in their own unit of work: the failure is what must be kept."""
    async with Runtime.of(request).session_maker() as session:
        known = await find_user_id_by_email(session, email)
        details = {"reason": reason, "ip": _client_address(request)}
        if known is None:
            # Never store what was typed: people type passwords into the email field.
            details["email_sha256"] = hashlib.sha256(normalise_email(email).encode()).hexdigest()
        session.add(
            audit.audit_event(
                audit.SIGN_IN_FAILED,
                organisation_id=known[1] if known else None,
                actor_type=ActorType.USER,
                actor_id=str(known[0]) if known else None,
                target_type="user",
                target_id=str(known[0]) if known else None,
                request_id=current_request_id(),
                details=details,
            )
        )
        await session.commit()


async def login(request: Request) -> Response:
    if request.method == "GET":
        return _login_form(request, next_path=safe_next(request.query_params.get("next")))
    form = await request.form()
    next_path = safe_next(form.get("next"))
    email = str(form.get("email") or "")[:320]
    password = str(form.get("password") or "")
    if not _login_csrf_ok(request, form.get("csrf")):
        return _login_form(
            request, next_path=next_path, email=email, error="The form expired. Please try again.", status=400
        )

    service = oauth_service(request)
    key = throttle_key(email, _client_address(request))
    wait = await service.throttle.attempt(key)
    if wait > 0:
        await _audit_failure(request, email, "throttled")
        minutes = max(1, (wait + 59) // 60)
        message = f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        response = _login_form(request, next_path=next_path, email=email, error=message, status=429)
        response.headers["Retry-After"] = str(wait)
        return response

    async with Runtime.of(request).session_maker() as session:
        user = await check_password(email, password, session)
        if user is not None:
            session.add(
                audit.audit_event(
                    audit.SIGN_IN_SUCCEEDED,
                    organisation_id=user.organisation_id,
                    actor_type=ActorType.USER,
                    actor_id=str(user.id),
                    target_type="user",
                    target_id=str(user.id),
                    request_id=current_request_id(),
                    details={"ip": _client_address(request)},
                )
            )
            session_token = await sign_in_sessions.start(session, user.id, user.organisation_id)
            await session.commit()
    if user is None:
        await _audit_failure(request, email, "bad_credentials")
        return _login_form(request, next_path=next_path, email=email, error=FAILURE_MESSAGE, status=400)

    await service.throttle.clear(key)
    response = RedirectResponse(next_path, status_code=303)
    value = _serializer(service, "session").dumps(
        {"uid": str(user.id), "sid": session_token, "csrf": secrets.token_urlsafe(24)}
    )
    _set_cookie(response, service, SESSION_COOKIE, value, max_age=int(SIGN_IN_SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    """End the browser session: its record goes, so a copy of the cookie no longer signs anyone in. Tokens
    already issued to apps end by expiry or through ``/oauth/revoke``."""
    session = _cookie_session(request)
    if session is not None:
        async with Runtime.of(request).session_maker() as db:
            await sign_in_sessions.end(db, session.token, session.user_id)
            await db.commit()
    response = render(request, "signed_out.html", {})
    response.delete_cookie(SESSION_COOKIE, path="/", secure=oauth_service(request).secure_cookies, httponly=True)
    return response


routes = [Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["GET", "POST"])]

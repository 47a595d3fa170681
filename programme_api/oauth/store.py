"""The authorization server's storage: codes, tokens, families and revocation, on a synchronous ``Session``.

authlib calls back synchronously, so everything here takes the ``Session`` that ``server.py`` obtains from
``AsyncSession.run_sync``: the statements still go through the async driver (SQLAlchemy bridges with a
greenlet), and the event loop keeps serving other requests while they wait. Nothing here commits; the
adapter decides once the whole exchange is over.

Codes and refresh tokens are read with ``SELECT ... FOR UPDATE`` (a no-op on SQLite, which serialises
writers anyway), so two concurrent exchanges of the same credential queue up: the second one finds it used.
A used code or refresh token presented again is treated as stolen and its whole token family is revoked
(``CredentialReplayed``); the adapter commits that revocation even though the request fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, InvalidGrantError, TokenMixin
from sqlalchemy.orm import Session

from ..domain.models import ActorType, AuditEvent, OAuthAuthorizationCode, OAuthClient, OAuthToken, User
from ..domain.passwords import hash_secret
from ..domain.tenancy import bind_tenant_of_sync
from . import audit, invalidation
from .clients import EXPLORER_CLIENT_ID, ClientRecord, ensure_explorer_anchor, find_client, public_client_id
from .errors import AuthenticationError
from .keys import KeyRing
from .lifetimes import AUTHORIZATION_CODE_LIFETIME, REFRESH_FAMILY_LIFETIME, REFRESH_TOKEN_IDLE_LIFETIME
from .tokens import IssuedToken, TokenIssuer
from .users import UserRecord, user_record
from .validation import verify_access_token

TokenKind = Literal["access_token", "refresh_token"]


class CredentialReplayed(InvalidGrantError):  # type: ignore[misc]
    """A used authorization code or refresh token came back: everything it led to has been revoked."""


@dataclass
class OAuthContext:
    """What one request's authorization-server work needs: its session, clock, issuer and request id."""

    session: Session
    tokens: TokenIssuer
    now: datetime
    request_id: str | None

    @property
    def issuer(self) -> str:
        return self.tokens.issuer

    @property
    def keyring(self) -> KeyRing:
        return self.tokens.keyring


def context_of(component: Any) -> OAuthContext:
    """The context of the server an authlib grant or endpoint belongs to (authlib gives each ``.server``)."""
    context: OAuthContext = component.server.context
    return context


@dataclass
class CodeRecord(AuthorizationCodeMixin):  # type: ignore[misc]
    row: OAuthAuthorizationCode
    client_id: str

    @property
    def code_challenge(self) -> str:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


@dataclass
class TokenRecord(TokenMixin):  # type: ignore[misc]
    """A stored token, seen as one ``kind``; ``holder_gone`` when its client is revoked or its person inactive."""

    row: OAuthToken
    kind: TokenKind
    client_id: str
    now: datetime
    holder_gone: bool = False

    def check_client(self, client: ClientRecord) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.row.scope

    @property
    def expires_at(self) -> datetime:
        if self.kind == "refresh_token" and self.row.refresh_expires_at is not None:
            return self.row.refresh_expires_at
        return self.row.access_expires_at

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - self.now).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= self.now

    def is_revoked(self) -> bool:
        used = self.kind == "refresh_token" and self.row.refresh_used_at is not None
        return self.row.revoked_at is not None or used or self.holder_gone


def query_client(context: OAuthContext, client_id: str) -> ClientRecord | None:
    """The client, read under its own organisation's binding (the built-in explorer has none yet)."""
    if client_id != EXPLORER_CLIENT_ID:
        bind_tenant_of_sync(context.session, "client", client_id)
    return find_client(context.session, client_id, context.issuer)


def load_user(context: OAuthContext, user_id: uuid.UUID | None) -> UserRecord | None:
    """The user if they still exist and are active (a deactivated person's grants stop working)."""
    if user_id is None:
        return None
    bind_tenant_of_sync(context.session, "user", str(user_id))
    row = context.session.get(User, user_id)
    return user_record(row) if row is not None and row.is_active else None


def _client_pk(context: OAuthContext, client: ClientRecord, user: UserRecord | None) -> tuple[uuid.UUID, uuid.UUID]:
    """``(client row id, organisation id)`` for storing a credential; the explorer's row is per organisation."""
    if client.pk is not None and client.organisation_id is not None:
        return client.pk, client.organisation_id
    if user is None:
        raise InvalidGrantError("the built-in client acts only for a signed-in person")
    return ensure_explorer_anchor(context.session, user.organisation_id, context.issuer), user.organisation_id


def save_code(
    context: OAuthContext,
    code: str,
    *,
    client: ClientRecord,
    user: UserRecord,
    redirect_uri: str,
    scope: str,
    code_challenge: str,
    code_challenge_method: str,
) -> None:
    client_pk, organisation_id = _client_pk(context, client, user)
    context.session.add(
        OAuthAuthorizationCode(
            organisation_id=organisation_id,
            code_hash=hash_secret(code),
            client_pk=client_pk,
            user_id=user.id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            expires_at=context.now + AUTHORIZATION_CODE_LIFETIME,
        )
    )
    context.session.flush()


def take_code(context: OAuthContext, code: str, client: ClientRecord) -> CodeRecord | None:
    """The unused, unexpired code issued to ``client``; a used one revokes what it issued and raises."""
    bind_tenant_of_sync(context.session, "code", hash_secret(code))
    found = context.session.execute(
        sa.select(OAuthAuthorizationCode, OAuthClient.client_id)
        .join(OAuthClient, OAuthClient.id == OAuthAuthorizationCode.client_pk)
        .where(OAuthAuthorizationCode.code_hash == hash_secret(code))
        .with_for_update(of=OAuthAuthorizationCode)
    ).first()
    if found is None:
        return None
    row, row_client_id = found
    if row.used_at is not None:
        _revoke_replayed(
            context, audit.AUTHORIZATION_CODE_REPLAYED, row.organisation_id, client.client_id, row.token_family_id
        )
        raise CredentialReplayed("Authorization code was already used; tokens issued from it are revoked.")
    record = CodeRecord(row=row, client_id=public_client_id(row_client_id))
    if record.client_id != client.client_id or row.expires_at <= context.now:
        return None
    return record


def mark_code_used(context: OAuthContext, record: CodeRecord, family_id: uuid.UUID | None) -> None:
    record.row.used_at = context.now
    record.row.token_family_id = family_id
    context.session.flush()


def _family_started(context: OAuthContext, family_id: uuid.UUID) -> datetime:
    started = context.session.scalar(
        sa.select(sa.func.min(OAuthToken.created_at)).where(OAuthToken.family_id == family_id)
    )
    return started if started is not None else context.now


def save_token(
    context: OAuthContext,
    issued: IssuedToken,
    *,
    client: ClientRecord,
    user: UserRecord | None,
    grant_type: str,
    refreshed_family_id: uuid.UUID | None,
) -> uuid.UUID:
    """Record an issued token (by ``jti``) and its refresh token (hashed), and audit the issuance.

    A refresh continues ``refreshed_family_id``; any other grant starts a new family, which begins now (so
    its start needs no query). Returns the token's family id.
    """
    client_pk, organisation_id = _client_pk(context, client, user)
    family_id = refreshed_family_id if refreshed_family_id is not None else uuid.uuid4()
    refresh_expires_at = None
    if issued.refresh_token is not None:
        started = context.now if refreshed_family_id is None else _family_started(context, refreshed_family_id)
        refresh_expires_at = min(context.now + REFRESH_TOKEN_IDLE_LIFETIME, started + REFRESH_FAMILY_LIFETIME)
    token, event = issuance_values(
        issued,
        client=client,
        client_pk=client_pk,
        organisation_id=organisation_id,
        user=user,
        grant_type=grant_type,
        family_id=family_id,
        refresh_expires_at=refresh_expires_at,
        now=context.now,
        request_id=context.request_id,
    )
    context.session.add_all([OAuthToken(**token), AuditEvent(**event)])
    context.session.flush()
    return family_id


def issuance_values(
    issued: IssuedToken,
    *,
    client: ClientRecord,
    client_pk: uuid.UUID,
    organisation_id: uuid.UUID,
    user: UserRecord | None,
    grant_type: str,
    family_id: uuid.UUID,
    refresh_expires_at: datetime | None,
    now: datetime,
    request_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every column of the token row and of its ``oauth.token_issued`` event (one writer bypasses the ORM)."""
    token = {
        "id": uuid.uuid4(),
        "organisation_id": organisation_id,
        "jti": issued.jti,
        "family_id": family_id,
        "client_pk": client_pk,
        "user_id": user.id if user is not None else None,
        "scope": issued.scope,
        "access_expires_at": issued.access_expires_at,
        "refresh_token_hash": hash_secret(issued.refresh_token) if issued.refresh_token is not None else None,
        "refresh_expires_at": refresh_expires_at,
        "refresh_used_at": None,
        "revoked_at": None,
        "created_at": now,
    }
    event = {
        "id": uuid.uuid4(),
        "organisation_id": organisation_id,
        "occurred_at": now,
        "actor_type": ActorType.USER if user is not None else ActorType.CLIENT,
        "actor_id": issued.subject,
        "action": audit.TOKEN_ISSUED,
        "target_type": "oauth_token",
        "target_id": issued.jti,
        "request_id": request_id,
        "details": {
            "grant_type": grant_type,
            "client_id": client.client_id,
            "scope": issued.scope,
            "family_id": str(family_id),
            "refresh_token": issued.refresh_token is not None,
        },
    }
    return token, event


def _token_query() -> sa.Select[OAuthToken, str, datetime | None, bool]:
    return (
        sa.select(OAuthToken, OAuthClient.client_id, OAuthClient.revoked_at, User.is_active)
        .join(OAuthClient, OAuthClient.id == OAuthToken.client_pk)
        .outerjoin(User, User.id == OAuthToken.user_id)
    )


def _token_record(found: sa.Row[OAuthToken, str, datetime | None, bool], kind: TokenKind, now: datetime) -> TokenRecord:
    row, row_client_id, client_revoked_at, user_active = found
    holder_gone = client_revoked_at is not None or (row.user_id is not None and not user_active)
    return TokenRecord(row, kind, public_client_id(row_client_id), now, holder_gone)


def take_refresh_token(context: OAuthContext, value: str) -> TokenRecord | None:
    """The live refresh token with this value; a used one revokes its family and raises."""
    bind_tenant_of_sync(context.session, "refresh_token", hash_secret(value))
    found = context.session.execute(
        _token_query().where(OAuthToken.refresh_token_hash == hash_secret(value)).with_for_update(of=OAuthToken)
    ).first()
    if found is None:
        return None
    record = _token_record(found, "refresh_token", context.now)
    row = record.row
    if row.refresh_used_at is not None and row.revoked_at is None:
        _revoke_replayed(context, audit.REFRESH_TOKEN_REUSED, row.organisation_id, record.client_id, row.family_id)
        raise CredentialReplayed("Refresh token was already used; its token family is revoked.")
    if record.is_revoked() or record.is_expired():
        return None
    return record


def mark_refresh_used(context: OAuthContext, record: TokenRecord) -> None:
    record.row.refresh_used_at = context.now
    context.session.flush()


def find_token(context: OAuthContext, value: str, hint: str | None) -> TokenRecord | None:
    """A token presented to the revocation or introspection endpoint: a JWT we signed, or a refresh token."""
    if hint != "refresh_token":
        try:
            claims = verify_access_token(
                value, context.keyring, issuer=context.issuer, audience=context.tokens.audience, check_expiry=False
            )
        except AuthenticationError:
            claims = None
        if claims is not None:
            bind_tenant_of_sync(context.session, "access_token", claims.jti)
            found = context.session.execute(_token_query().where(OAuthToken.jti == claims.jti)).first()
            if found is not None:
                return _token_record(found, "access_token", context.now)
    bind_tenant_of_sync(context.session, "refresh_token", hash_secret(value))
    found = context.session.execute(_token_query().where(OAuthToken.refresh_token_hash == hash_secret(value))).first()
    return None if found is None else _token_record(found, "refresh_token", context.now)


def revoke_family(context: OAuthContext, family_id: uuid.UUID | None) -> int:
    """Revoke every token of a family (one grant and its rotations); returns how many were still live."""
    if family_id is None:
        return 0
    result = context.session.execute(
        sa.update(OAuthToken)
        .where(OAuthToken.family_id == family_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=context.now)
        .execution_options(synchronize_session="fetch")
    )
    context.session.flush()
    invalidation.announce(context.session, invalidation.family_tag(family_id))
    return int(getattr(result, "rowcount", 0) or 0)


def _audit_family(
    context: OAuthContext,
    action: str,
    organisation_id: uuid.UUID,
    client_id: str,
    family_id: uuid.UUID | None,
    details: dict[str, Any],
) -> None:
    """Record a client's act on a whole token family: replays and revocations share this one event shape."""
    context.session.add(
        audit.audit_event(
            action,
            organisation_id=organisation_id,
            actor_type=ActorType.CLIENT,
            actor_id=client_id,
            target_type="token_family",
            target_id=str(family_id) if family_id is not None else None,
            request_id=context.request_id,
            details=details,
        )
    )


def _revoke_replayed(
    context: OAuthContext, action: str, organisation_id: uuid.UUID, client_id: str, family_id: uuid.UUID | None
) -> None:
    """A used code or refresh token came back: revoke its family and audit it (the caller then refuses)."""
    revoked = revoke_family(context, family_id)
    _audit_family(context, action, organisation_id, client_id, family_id, {"revoked_tokens": revoked})


def audit_revocation(context: OAuthContext, record: TokenRecord, client: ClientRecord, revoked: int) -> None:
    row = record.row
    details = {"token_type": record.kind, "jti": row.jti, "revoked_tokens": revoked}
    _audit_family(context, audit.TOKEN_REVOKED, row.organisation_id, client.client_id, row.family_id, details)
    context.session.flush()

"""The grants this server offers, with authlib's permissive defaults replaced.

- client credentials: confidential clients only; a scope outside the client's set is ``invalid_scope``.
- authorization code: PKCE with S256 is required of every client, confidential or public (authlib only
  requires it of public clients and also accepts ``plain``); codes are single-use, live 60 seconds, are
  bound to the client and the exact redirect URI, and a replayed code revokes the tokens it produced.
- refresh token: every use rotates it (a new refresh token, the old one marked used); presenting a used one
  revokes the whole family (RFC 9700 §4.14.2). A refresh may narrow the scope, never widen it.

There is no implicit and no password grant: they are simply not registered.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge

from ..domain.principal import effective_scopes
from . import store
from .clients import ClientRecord, format_scope, parse_scope
from .store import context_of
from .users import UserRecord

PKCE_METHOD = "S256"


def consent_scopes(client: ClientRecord, user: UserRecord, scope: str | None) -> frozenset[str]:
    """The scopes ``user`` may grant ``client`` of those requested, else the refusal (an ``OAuth2Error``).

    One rule for both places that apply it: the consent page, and saving the code once consent is given.
    """
    if client.organisation_id is not None and client.organisation_id != user.organisation_id:
        raise AccessDeniedError("This application belongs to another organisation.")
    granted = effective_scopes(parse_scope(scope) & client.scopes, user.role)
    if not granted:
        raise InvalidScopeError("None of the requested scopes is allowed for your role.")
    return granted


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE for every authorization request and token exchange, and only the S256 method."""

    DEFAULT_CODE_CHALLENGE_METHOD = PKCE_METHOD
    SUPPORTED_CODE_CHALLENGE_METHOD = [PKCE_METHOD]
    CODE_CHALLENGE_METHODS = {PKCE_METHOD: compare_s256_code_challenge}

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'.")
        if data.get("code_challenge_method") != PKCE_METHOD:
            raise InvalidRequestError("Only 'code_challenge_method=S256' is accepted.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: ClientRecord = self.request.client
        if client.get_allowed_scope(self.request.payload.scope) is None:
            raise InvalidScopeError("The client may not have the requested scope.")


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        client: ClientRecord = request.client
        user: UserRecord = request.user
        granted = consent_scopes(client, user, request.scope)
        data = request.payload.data
        store.save_code(
            context_of(self),
            code,
            client=client,
            user=user,
            redirect_uri=request.payload.redirect_uri,
            scope=format_scope(granted),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
        )

    def query_authorization_code(self, code: str, client: ClientRecord) -> store.CodeRecord | None:
        return store.take_code(context_of(self), code, client)

    def delete_authorization_code(self, authorization_code: store.CodeRecord) -> None:
        store.mark_code_used(context_of(self), authorization_code, self.server.saved_family_id)

    def authenticate_user(self, authorization_code: store.CodeRecord) -> UserRecord | None:
        return store.load_user(context_of(self), authorization_code.row.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> store.TokenRecord | None:
        return store.take_refresh_token(context_of(self), refresh_token)

    def authenticate_user(self, refresh_token: store.TokenRecord) -> UserRecord:
        user = store.load_user(context_of(self), refresh_token.row.user_id)
        if user is None:
            raise InvalidGrantError("The person this refresh token was issued for can no longer sign in.")
        return user

    def revoke_old_credential(self, refresh_token: store.TokenRecord) -> None:
        store.mark_refresh_used(context_of(self), refresh_token)

"""Token revocation (RFC 7009) and introspection (RFC 7662).

Revoking either token of a grant ends the grant: the whole family (the original issue and every rotation)
is revoked, and the revocation is announced (``invalidation.py``): the access token stops working at once
on the worker that revoked it and within a second on every other. Introspection answers only confidential
clients, about their own tokens (or, for a client holding ``admin``, about tokens of its organisation).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint

from . import store
from .clients import ClientRecord
from .store import context_of


class RevocationEndpoint(BaseRevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> store.TokenRecord | None:
        return store.find_token(context_of(self), token_string, token_type_hint)

    def revoke_token(self, token: store.TokenRecord, request: Any) -> None:
        context = context_of(self)
        revoked = store.revoke_family(context, token.row.family_id)
        store.audit_revocation(context, token, request.client, revoked)


class IntrospectionEndpoint(BaseIntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> store.TokenRecord | None:
        return store.find_token(context_of(self), token_string, token_type_hint)

    def check_permission(self, token: store.TokenRecord, client: ClientRecord, request: Any) -> bool:
        if not client.is_confidential:
            return False
        if token.check_client(client):
            return True
        return "admin" in client.scopes and client.organisation_id == token.row.organisation_id

    def introspect_token(self, token: store.TokenRecord) -> dict[str, Any]:
        context = context_of(self)
        row = token.row
        return {
            "active": True,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "client_id": token.client_id,
            "scope": row.scope,
            "sub": str(row.user_id) if row.user_id is not None else token.client_id,
            "iss": context.issuer,
            "aud": context.tokens.audience,
            "jti": row.jti,
            "iat": int(row.created_at.timestamp()),
            "exp": int(token.expires_at.timestamp()),
        }

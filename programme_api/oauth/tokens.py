"""JWT access tokens (RFC 9068) and opaque refresh tokens.

Access tokens are signed with the key ring's current ES256 key and name it by ``kid``. Their audience is the
API as a resource (``{ISSUER}/graphql``, published as ``protected_resources`` in the server metadata), not
the client id authlib would put there: the resource server checks that it is the intended recipient.
Each token's ``jti`` is recorded in ``oauth_tokens`` so the resource server can refuse revoked tokens.
Refresh tokens are 256-bit random strings, stored only as their SHA-256 hash.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt

from ..domain.passwords import new_secret
from .keys import SIGNING_ALGORITHM, KeyRing
from .lifetimes import MACHINE_ACCESS_TOKEN_LIFETIME, PERSON_ACCESS_TOKEN_LIFETIME

JWT_TYP = "at+jwt"


def resource_identifier(issuer: str) -> str:
    """The audience of every access token: the API this server protects."""
    return f"{issuer}/graphql"


def access_token_lifetime(*, for_person: bool, confidential_client: bool) -> timedelta:
    """60 minutes for a confidential machine client acting for itself, 15 for anything a person or browser holds."""
    if confidential_client and not for_person:
        return MACHINE_ACCESS_TOKEN_LIFETIME
    return PERSON_ACCESS_TOKEN_LIFETIME


@dataclass(frozen=True)
class IssuedToken:
    """What the token endpoint returns, plus what must be stored about it."""

    jti: str
    subject: str
    scope: str
    issued_at: datetime
    access_expires_at: datetime
    access_token: str
    refresh_token: str | None

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.access_token,
            "expires_in": int((self.access_expires_at - self.issued_at).total_seconds()),
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


class TokenIssuer:
    """Signs access tokens for one issuer with the key ring's current key."""

    def __init__(self, issuer: str, keyring: KeyRing) -> None:
        self.issuer = issuer
        self.audience = resource_identifier(issuer)
        self.keyring = keyring

    def issue(
        self,
        *,
        client_id: str,
        subject: str,
        scope: str,
        lifetime: timedelta,
        now: datetime,
        with_refresh_token: bool,
    ) -> IssuedToken:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + lifetime
        jti = secrets.token_urlsafe(24)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "client_id": client_id,
            "scope": scope,
            "jti": jti,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        signing = self.keyring.signing_key()
        header = {"alg": SIGNING_ALGORITHM, "typ": JWT_TYP, "kid": signing.kid}
        access_token = jwt.encode(header, claims, signing.key, algorithms=[SIGNING_ALGORITHM])
        return IssuedToken(
            jti=jti,
            subject=subject,
            scope=scope,
            issued_at=issued_at,
            access_expires_at=expires_at,
            access_token=access_token,
            refresh_token=new_secret() if with_refresh_token else None,
        )

"""JWT access tokens (RFC 9068) and opaque refresh tokens.

Access tokens are signed with the key ring's current ES256 key and name it by ``kid``. Their audience is the
API as a resource (``{ISSUER}/graphql``, published as ``protected_resources`` in the server metadata), not
the client id authlib would put there: the resource server checks that it is the intended recipient.
Each token's ``jti`` is recorded in ``oauth_tokens`` so the resource server can refuse revoked tokens.
Refresh tokens are 256-bit random strings, stored only as their SHA-256 hash.

The compact JWS is put together here rather than by joserfc's general encoder (which validates headers and
claims registries on every call, most of the cost of a token): the header is fixed per key, the claims are
ours, and the signature is ES256 as RFC 7518 §3.4 defines it (the raw 32-byte ``r`` and ``s``). Every token is
still verified by joserfc (``validation.py``), and the tests decode issued tokens with it.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..domain.passwords import new_secret
from .keys import SIGNING_ALGORITHM, KeyRing, SigningKey
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
        access_token = sign_es256(self.keyring.signing_key(), claims)
        return IssuedToken(
            jti=jti,
            subject=subject,
            scope=scope,
            issued_at=issued_at,
            access_expires_at=expires_at,
            access_token=access_token,
            refresh_token=new_secret() if with_refresh_token else None,
        )


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@lru_cache(maxsize=8)
def _encoded_header(kid: str) -> bytes:
    return _b64(orjson.dumps({"alg": SIGNING_ALGORITHM, "typ": JWT_TYP, "kid": kid}))


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def sign_es256(signing: SigningKey, claims: dict[str, Any]) -> str:
    """The compact JWS of ``claims`` signed with ``signing`` (ES256, ``typ: at+jwt``, ``kid``)."""
    signing_input = _encoded_header(signing.kid) + b"." + _b64(orjson.dumps(claims))
    private_key = signing.key.private_key
    assert private_key is not None  # the key file holds private keys only (``keys.parse_key_file``)
    r, s = decode_dss_signature(private_key.sign(signing_input, _ECDSA_SHA256))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signing_input + b"." + _b64(signature)).decode("ascii")

"""Checking an access token's signature and claims (the stateless half of the resource server).

Every check is explicit rather than trusted to the token: the algorithm is pinned to ES256 before any key is
chosen (so ``alg: none`` and HS256-signed-with-the-public-key forgeries fail), the ``kid`` must name a key
this server still trusts, the header must say ``typ: at+jwt`` (so an ID token or another JWT cannot pass as
an access token), and ``iss``, ``aud``, ``exp``, ``iat``, ``sub``, ``client_id``, ``jti`` must all be present
and right. The stateful half (revocation, current client and user) is in ``resource.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwt import JWTClaimsRegistry

from .errors import AuthenticationError
from .keys import SIGNING_ALGORITHM, KeyRing
from .lifetimes import CLOCK_SKEW
from .tokens import JWT_TYP

#: Longer than any token we sign; refusing bigger inputs keeps parsing cheap for garbage.
MAX_TOKEN_LENGTH = 4096
_ACCEPTED_TYP = {JWT_TYP, f"application/{JWT_TYP}"}


@dataclass(frozen=True)
class AccessTokenClaims:
    jti: str
    subject: str
    client_id: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int


def verify_access_token(
    token: str,
    keyring: KeyRing,
    *,
    issuer: str,
    audience: str,
    now: int | None = None,
    check_expiry: bool = True,
) -> AccessTokenClaims:
    """The claims of a token this server signed for this audience, or ``AuthenticationError``.

    ``check_expiry=False`` serves revocation and introspection, which must recognise expired tokens too.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise AuthenticationError("The access token is malformed.")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise AuthenticationError("The access token is malformed.") from exc
    if header.get("alg") != SIGNING_ALGORITHM:
        raise AuthenticationError("The access token is not signed with the expected algorithm.")
    if header.get("typ") not in _ACCEPTED_TYP:
        raise AuthenticationError("The token is not an access token.")
    kid = header.get("kid")
    key = keyring.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise AuthenticationError("The access token is signed with an unknown key.")
    try:
        claims = jwt.decode(token, key, algorithms=[SIGNING_ALGORITHM]).claims
    except (JoseError, ValueError) as exc:
        raise AuthenticationError("The access token signature is invalid.") from exc

    registry = JWTClaimsRegistry(
        now=int(time.time()) if now is None else now,
        leeway=int(CLOCK_SKEW.total_seconds()),
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": check_expiry},
        iat={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
        client_id={"essential": True},
    )
    checked = claims if check_expiry else {name: value for name, value in claims.items() if name != "exp"}
    try:
        registry.validate(checked)
    except ExpiredTokenError as exc:
        raise AuthenticationError("The access token has expired.") from exc
    except JoseError as exc:
        raise AuthenticationError("The access token was not issued for this API.") from exc
    scope, client_id, expires_at = claims.get("scope", ""), claims["client_id"], claims.get("exp")
    if not isinstance(scope, str) or not isinstance(client_id, str) or not isinstance(expires_at, int | float):
        raise AuthenticationError("The access token is malformed.")
    return AccessTokenClaims(
        jti=claims["jti"],
        subject=claims["sub"],
        client_id=client_id,
        scopes=frozenset(scope.split()),
        issued_at=int(claims["iat"]),
        expires_at=int(expires_at),
    )

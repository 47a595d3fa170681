"""The authorization server's per-process state: key ring, token issuer, sign-in throttle.

Built on first use by the running app and kept on ``app.state`` (one per worker process). Building it reads
the key file named by ``SECRET_KEY_FILE``, creating it on the first start of a fresh installation.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..config import Settings
from ..runtime import Runtime
from .keys import KeyRing
from .throttle import SignInThrottle, build_throttle
from .tokens import TokenIssuer


@dataclass
class OAuthService:
    settings: Settings
    keyring: KeyRing
    tokens: TokenIssuer
    throttle: SignInThrottle

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def secure_cookies(self) -> bool:
        return self.settings.issuer.startswith("https://")


def build_service(settings: Settings) -> OAuthService:
    keyring = KeyRing(settings.secret_key_file)
    return OAuthService(
        settings=settings,
        keyring=keyring,
        tokens=TokenIssuer(settings.issuer, keyring),
        throttle=build_throttle(settings.redis_url),
    )


def oauth_service(connection: HTTPConnection) -> OAuthService:
    """This app's service, built the first time a request needs it."""
    state = connection.app.state
    service: OAuthService | None = getattr(state, "oauth_service", None)
    if service is None:
        service = build_service(Runtime.of(connection).settings)
        state.oauth_service = service
    return service

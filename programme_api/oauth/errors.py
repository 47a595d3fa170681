"""The resource server's refusal: the request's credentials are present but not acceptable."""

from __future__ import annotations

from ..domain.errors import DomainError, ErrorCode


class AuthenticationError(DomainError):
    """A bearer token that is malformed, forged, expired, revoked or sent the wrong way.

    It is a ``DomainError`` with code ``UNAUTHENTICATED`` so every HTTP edge that already turns domain errors
    into responses handles it; an edge that wants the exact RFC 6750 answer uses ``status_code`` and
    ``www_authenticate`` (``invalid_token`` with 401, or ``invalid_request`` with 400 for a token sent in
    the query string). The description says which check failed; only the token's holder sees it.
    """

    def __init__(self, description: str, *, error: str = "invalid_token", status_code: int = 401) -> None:
        super().__init__(ErrorCode.UNAUTHENTICATED, description)
        self.error = error
        self.description = description
        self.status_code = status_code

    @classmethod
    def invalid_request(cls, description: str) -> AuthenticationError:
        """A request that carries a token in a way RFC 6750 forbids here (e.g. in the query string)."""
        return cls(description, error="invalid_request", status_code=400)

    @property
    def www_authenticate(self) -> str:
        safe = self.description.replace('"', "'")
        return f'Bearer error="{self.error}", error_description="{safe}"'

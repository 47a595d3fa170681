"""Expected failures carry a code; the API turns them into typed user errors or top-level error codes."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    CONFLICT = "CONFLICT"
    DUPLICATE = "DUPLICATE"
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    BACKGROUND_CHECK_EXPIRED = "BACKGROUND_CHECK_EXPIRED"
    TRAINING_INCOMPLETE = "TRAINING_INCOMPLETE"
    GROUP_FULL = "GROUP_FULL"
    GROUP_NOT_ACTIVE = "GROUP_NOT_ACTIVE"
    NOT_ENROLLED = "NOT_ENROLLED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    INVALID_STATE = "INVALID_STATE"
    SCHEDULE_MISSING = "SCHEDULE_MISSING"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    # Per-answer refusals of a survey response (one user error per item at fault).
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    MISSING_ITEM = "MISSING_ITEM"
    TOO_MANY_MISSING = "TOO_MANY_MISSING"
    NOT_STARTED = "NOT_STARTED"


class DomainError(Exception):
    """A refusal the caller can act on: a code, a message for people, and the input field it concerns."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def problems_found(self) -> list[tuple[str | None, str, ErrorCode]]:
        """Each thing wrong as (field, message, code): one here; errors that list several say each one, so a
        form can mark every field at once."""
        return [(self.field, self.message, self.code)]


class NotFound(DomainError):
    """Missing and not-yours look the same, so IDs leak nothing about other tenants."""

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{what} not found", field)

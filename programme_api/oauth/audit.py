"""Audit events written by the authorization server: issuance, revocation, sign-ins, client creation.

The caller adds the event to its own session, so the event commits or rolls back with the change it records
(a refused request leaves neither behind). Failed sign-ins are the exception: they are their own unit of
work, because recording the failure is the point.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..domain.models import ActorType, AuditEvent

TOKEN_ISSUED = "oauth.token_issued"  # noqa: S105 (an action name, not a secret)
TOKEN_REVOKED = "oauth.token_revoked"  # noqa: S105
REFRESH_TOKEN_REUSED = "oauth.refresh_token_reused"  # noqa: S105
AUTHORIZATION_CODE_REPLAYED = "oauth.authorization_code_replayed"
CLIENT_CREATED = "oauth.client_created"
USER_CREATED = "auth.user_created"
SIGN_IN_SUCCEEDED = "auth.sign_in"
SIGN_IN_FAILED = "auth.sign_in_failed"


def audit_event(
    action: str,
    *,
    organisation_id: uuid.UUID | None,
    actor_type: ActorType,
    actor_id: str | None,
    target_type: str | None = None,
    target_id: str | None = None,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        organisation_id=organisation_id,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=request_id,
        details=details or {},
    )

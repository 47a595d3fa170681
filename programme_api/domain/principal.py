"""Who is asking: the one object every access decision is made from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .models import ActorType, Role

ALL_SCOPES = frozenset(
    {
        "programme:read",
        "programme:write",
        "attendance:write",
        "participants:read",
        "participants:write",
        "surveys:write",
        "surveys:read",
        "evaluation:read",
        "admin",
    }
)

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.ORG_ADMIN: ALL_SCOPES - {"evaluation:read"},
    Role.COORDINATOR: ALL_SCOPES - {"evaluation:read", "admin"},
    Role.FACILITATOR: frozenset(
        {
            "programme:read",
            "attendance:write",
            "participants:read",
            "participants:write",
            "surveys:write",
            "surveys:read",
        }
    ),
    Role.EVALUATOR: frozenset({"evaluation:read"}),
}


@dataclass(frozen=True)
class Principal:
    """The caller of one request: an organisation, optionally narrowed to regions, with effective scopes.

    ``scopes`` are already the effective ones (token scopes ∩ client scopes ∩ what the role allows).
    ``region_ids`` is ``None`` for "every region of the organisation". A person acting through a partner
    app has a ``role``; a machine client acting for itself has none and is limited by scopes and regions.
    A facilitator is further limited to the groups they are assigned to (``facilitator_id``).
    """

    subject: str
    actor_type: ActorType
    organisation_id: uuid.UUID
    scopes: frozenset[str]
    region_ids: frozenset[uuid.UUID] | None = None
    role: Role | None = None
    user_id: uuid.UUID | None = None
    client_id: str | None = None
    facilitator_id: uuid.UUID | None = None
    evaluation_project_id: uuid.UUID | None = None
    token_id: str | None = field(default=None, compare=False)
    # The client may run only the documents registered for it (``oauth/documents.py``).
    trusted_documents_only: bool = False

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def actor_id(self) -> str:
        """The stable identifier written to audit events and idempotency records."""
        return self.subject


def effective_scopes(requested: frozenset[str], role: Role | None) -> frozenset[str]:
    """Scopes a token may carry: the request, cut to known scopes and to what the role allows."""
    allowed = ALL_SCOPES if role is None else ROLE_SCOPES[role]
    return requested & allowed

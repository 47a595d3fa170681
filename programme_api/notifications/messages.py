"""What a recipient is told about an event: the same JSON for webhooks and live subscriptions.

``{"type": "session.cancelled", "timestamp": "...", "data": {"eventId": ..., "sessionId": ..., ...}}``, the
envelope the Standard Webhooks specification recommends. Rows are named by their GraphQL global IDs (so a
partner can fetch what it may read with ``node(id:)``), beside the few non-personal fields the event type
declares; nothing else of the row, and never health data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.models import OutboxEvent
from ..schema.relay import to_global_id

#: The kind of id an event payload names -> the GraphQL type of its global ID.
ID_TYPES = {
    "session": "GroupSession",
    "group": "Group",
    "enrolment": "Enrolment",
    "participant": "Participant",
    "alert": "SafeguardingAlert",
}


@dataclass(frozen=True)
class Event:
    """A committed outbox event, as the worker hands it on (also across processes, as JSON)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    event_type: str
    group_id: uuid.UUID | None
    participant_id: uuid.UUID | None
    payload: dict[str, Any]
    occurred_at: datetime

    @classmethod
    def of(cls, row: OutboxEvent) -> Event:
        return cls(
            row.id, row.organisation_id, row.event_type, row.group_id, row.participant_id, row.payload, row.created_at
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "organisation_id": str(self.organisation_id),
            "event_type": self.event_type,
            "group_id": str(self.group_id) if self.group_id else None,
            "participant_id": str(self.participant_id) if self.participant_id else None,
            "payload": self.payload,
            "occurred_at": self.occurred_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        def optional(key: str) -> uuid.UUID | None:
            return uuid.UUID(data[key]) if data.get(key) else None

        return cls(
            uuid.UUID(data["id"]),
            uuid.UUID(data["organisation_id"]),
            data["event_type"],
            optional("group_id"),
            optional("participant_id"),
            data["payload"],
            datetime.fromisoformat(data["occurred_at"]),
        )


def global_ids(event: Event) -> dict[str, str]:
    """``{"sessionId": <global ID>, ...}`` for the ids the event names."""
    ids: dict[str, str] = event.payload.get("ids", {})
    return {f"{kind}Id": str(to_global_id(ID_TYPES[kind], uuid.UUID(raw))) for kind, raw in ids.items()}


def webhook_body(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"eventId": str(event.id), **global_ids(event), **event.payload.get("fields", {})}
    return {"type": event.event_type, "timestamp": event.occurred_at.isoformat(), "data": data}

"""The root Subscription: live change events over graphql-transport-ws at ``/graphql``.

The websocket edge (``web/subscriptions.py``) hands each subscription a feed of the events its connection's
principal may know about, checked when each event is sent; the resolver only narrows it to the types asked
for and shapes it. An event carries ids (global IDs, to fetch with ``node``) and a few non-personal fields.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry

from ..domain.errors import DomainError, ErrorCode
from ..domain.outbox import EVENT_TYPES
from ..notifications import messages

if TYPE_CHECKING:
    from ..notifications.messages import Event

    EventFeed = Callable[[], AsyncIterator[Event]]
EVENT_LIST = ", ".join(f"`{name}`" for name in EVENT_TYPES)


@strawberry.type(description="A committed change you may know about: what happened and the ids of the rows concerned.")
class ChangeEvent:
    id: strawberry.ID = strawberry.field(description="The event's id (the same as a webhook's `data.eventId`).")
    type: str = strawberry.field(description=f"What happened: one of {EVENT_LIST}.")
    occurred_at: datetime = strawberry.field(description="When the change was committed.")
    session_id: strawberry.ID | None = None
    group_id: strawberry.ID | None = None
    enrolment_id: strawberry.ID | None = None
    participant_id: strawberry.ID | None = None
    alert_id: strawberry.ID | None = None
    status: str | None = strawberry.field(default=None, description="The session's or enrolment's new status.")
    starts_at: datetime | None = strawberry.field(default=None, description="A session's (new) start.")
    ends_at: datetime | None = strawberry.field(default=None, description="A session's (new) end.")
    purpose: str | None = strawberry.field(default=None, description="The consent purpose withdrawn.")

    @classmethod
    def of(cls, event: Event) -> ChangeEvent:
        ids = {key: strawberry.ID(value) for key, value in messages.global_ids(event).items()}
        fields: dict[str, Any] = event.payload.get("fields", {})
        return cls(
            id=strawberry.ID(str(event.id)),
            type=event.event_type,
            occurred_at=event.occurred_at,
            session_id=ids.get("sessionId"),
            group_id=ids.get("groupId"),
            enrolment_id=ids.get("enrolmentId"),
            participant_id=ids.get("participantId"),
            alert_id=ids.get("alertId"),
            status=fields.get("status"),
            starts_at=datetime.fromisoformat(fields["startsAt"]) if "startsAt" in fields else None,
            ends_at=datetime.fromisoformat(fields["endsAt"]) if "endsAt" in fields else None,
            purpose=fields.get("purpose"),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Changes in your reach as they are committed (over graphql-transport-ws at `/graphql`), "
        "optionally only some `types`. Each event needs the read scope of its type and reach of its group or "
        "participant at the time it is sent."
    )
    async def changes(
        self, info: strawberry.Info[Any, None], types: list[str] | None = None
    ) -> AsyncGenerator[ChangeEvent, None]:
        wanted = set(types or EVENT_TYPES)
        for index, name in enumerate(types or []):
            if name not in EVENT_TYPES:
                raise DomainError(ErrorCode.INVALID, f"unknown event type {name!r}", f"types.{index}")
        feed: EventFeed = info.context.feed
        async for event in feed():
            if event.event_type in wanted:
                yield ChangeEvent.of(event)

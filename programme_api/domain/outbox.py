"""Domain events, written to the transactional outbox in the same transaction as the change they describe.

A service calls ``emit`` once per change, after flushing it: the event row is part of the request's unit of
work, so it is committed exactly when the change is, and a rolled-back change (a refused mutation, an error)
leaves no event behind. Nothing is sent from here: the worker reads committed events and delivers them
(webhooks, live subscriptions, safeguarding emails), so a process that dies after the commit loses nothing.

An event names its rows by id and carries only the few fields its type declares, none of them personal or
health data; each recipient must hold the type's read scope and reach the row's group or participant when the
event is sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..request_context import current_request_id
from . import access
from .models import Enrolment, Group, GroupSession, OutboxEvent, Participant, SafeguardingAlert
from .principal import Principal


@dataclass(frozen=True)
class EventType:
    """What an event means and the read scope a recipient needs to be told about it."""

    name: str
    scope: str
    description: str


EVENT_TYPES: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType("session.cancelled", "programme:read", "A scheduled session was cancelled."),
        EventType("session.rescheduled", "programme:read", "A scheduled session was moved to another time."),
        EventType("register.recorded", "programme:read", "A session's register (attendance) was recorded."),
        EventType("participant.enrolled", "participants:read", "A participant was given a place or a waitlist place."),
        EventType("participant.left", "participants:read", "A participant left a group."),
        EventType("enrolment.promoted", "participants:read", "A waitlisted enrolment was given a freed place."),
        EventType("consent.withdrawn", "participants:read", "A participant withdrew a consent."),
        EventType("safeguarding_alert.raised", "surveys:read", "A survey answer raised a safeguarding alert."),
        EventType("safeguarding_alert.acknowledged", "surveys:read", "A safeguarding alert was acknowledged."),
    )
}

Row = GroupSession | Enrolment | SafeguardingAlert | Participant


def _describe(row: Row) -> tuple[Any, Any, dict[str, str], dict[str, Any]]:
    """(group id, participant id, ids by kind, fields) of the row an event is about."""
    if isinstance(row, GroupSession):
        fields = {"status": row.status.value, "startsAt": row.starts_at.isoformat(), "endsAt": row.ends_at.isoformat()}
        return row.group_id, None, {"session": str(row.id), "group": str(row.group_id)}, fields
    if isinstance(row, Enrolment):
        ids = {"enrolment": str(row.id), "group": str(row.group_id), "participant": str(row.participant_id)}
        return row.group_id, row.participant_id, ids, {"status": row.status.value}
    if isinstance(row, SafeguardingAlert):
        # The participant is left out of the payload: that a person has an alert is itself health data.
        return row.group_id, row.participant_id, {"alert": str(row.id), "group": str(row.group_id)}, {}
    return None, row.id, {"participant": str(row.id)}, {}


async def emit(session: AsyncSession, principal: Principal, event_type: str, row: Row, **fields: str) -> None:
    """Add the event ``event_type`` about ``row`` to the unit of work (committed or rolled back with it).

    ``fields`` adds declared non-personal values (a consent's purpose); everything else comes from the row.
    """
    await session.execute(insert_event(event_values(principal, event_type, row, **fields)))


def event_values(principal: Principal, event_type: str, row: Row, **fields: str) -> dict[str, Any]:
    """The columns of one event: for ``emit``, and for a write path that inserts the event in the same
    statement as its change (``insert_event``) to save a round trip."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    group_id, participant_id, ids, row_fields = _describe(row)
    return {
        "id": uuid.uuid4(),
        "organisation_id": principal.organisation_id,
        "event_type": event_type,
        "subject_id": row.id,
        "group_id": group_id,
        "participant_id": participant_id,
        "payload": {"ids": ids, "fields": row_fields | fields},
        "request_id": current_request_id(),
    }


def insert_event(values: dict[str, Any]) -> sa.Insert:
    """The INSERT of one event (from ``event_values``), to run alone or as a CTE of the write it announces."""
    return sa.insert(OutboxEvent).values(values)


async def reaches(
    session: AsyncSession,
    principal: Principal,
    event_type: str,
    group_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
) -> bool:
    """Whether ``principal`` may be told about an event now: it holds the type's read scope and reaches the
    event's group (or, for an event about a participant alone, the participant) by the access rules.

    Asked when the event is sent, not when the recipient subscribed, so a region taken away, a scope narrowed
    or a facilitator unassigned applies to the next event.
    """
    known = EVENT_TYPES.get(event_type)
    if known is None or not principal.has_scope(known.scope):
        return False
    statement: sa.Select[Any]
    if group_id is not None:
        statement = access.in_reach(principal, Group).where(Group.id == group_id)
    elif participant_id is not None:
        statement = access.in_reach(principal, Participant).where(Participant.id == participant_id)
    else:
        return False
    return (
        await session.execute(statement.with_only_columns(sa.literal(1), maintain_column_froms=True).limit(1))
    ).first() is not None

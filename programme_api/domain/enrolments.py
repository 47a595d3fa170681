"""Places in groups: enrol (active while there is room, otherwise waitlisted), leave, and fill from the waitlist.

Capacity decisions lock the group row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer),
so two enrolments racing for the last place cannot both get it, and a leave promotes exactly one waiting
person per freed place. The waitlist is served first come, first served (``requested_at``, then id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, outbox
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import Enrolment, EnrolmentStatus, Group, GroupStatus, Participant, utcnow
from .principal import Principal

SCOPE = "participants:write"


@dataclass(frozen=True)
class Left:
    """A leave and the waitlisted enrolments it promoted (at most one, unless the group had spare places)."""

    enrolment: Enrolment
    promoted: list[Enrolment]


async def _active_places(session: AsyncSession, principal: Principal, group: Group) -> int:
    statement = (
        access.in_reach(principal, Enrolment)
        .where(Enrolment.group_id == group.id, Enrolment.status == EnrolmentStatus.ACTIVE)
        .with_only_columns(sa.func.count(Enrolment.id))
    )
    return int((await session.execute(statement)).scalar_one())


async def enrol(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, group_id: uuid.UUID
) -> Enrolment:
    """Give the participant a place, or a waitlist place when the group is full. The group must be active."""
    require_scope(principal, SCOPE)
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    participant = await access.get_in_reach(
        session, principal, Participant, participant_id, "participant", "participant_id"
    )
    return await enrol_in(session, principal, participant, group)


async def enrol_in(session: AsyncSession, principal: Principal, participant: Participant, group: Group) -> Enrolment:
    """``enrol`` for rows already found within reach (the group locked): registration enrols through this."""
    if group.status is not GroupStatus.ACTIVE:
        raise DomainError(ErrorCode.GROUP_NOT_ACTIVE, f"the group is {group.status.value}", "group_id")
    existing = (
        await session.execute(
            access.in_reach(principal, Enrolment).where(
                Enrolment.group_id == group.id, Enrolment.participant_id == participant.id
            )
        )
    ).scalar_one_or_none()
    if existing is not None and existing.status is not EnrolmentStatus.LEFT:
        raise DomainError(
            ErrorCode.DUPLICATE, f"the participant is already {existing.status.value} in this group", "participant_id"
        )
    has_room = await _active_places(session, principal, group) < group.capacity
    status = EnrolmentStatus.ACTIVE if has_room else EnrolmentStatus.WAITLISTED
    now = utcnow()
    if existing is None:
        enrolment = Enrolment(
            id=uuid.uuid4(),
            organisation_id=principal.organisation_id,
            participant_id=participant.id,
            group_id=group.id,
        )
        session.add(enrolment)
    else:  # one row per participant and group: coming back reopens the old one
        enrolment = existing
        enrolment.version += 1
    enrolment.status = status
    enrolment.requested_at = now
    enrolment.activated_at = now if has_room else None
    enrolment.left_at = None
    await session.flush()
    await audit.record(session, principal, "enrolment.create", enrolment, {"status": status.value})
    await outbox.emit(session, principal, "participant.enrolled", enrolment)
    return enrolment


async def leave(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, version: int) -> Left:
    """Mark the enrolment left; a freed active place goes to the earliest waitlisted enrolment."""
    require_scope(principal, SCOPE)
    enrolment = await access.get_in_reach(session, principal, Enrolment, enrolment_id, "enrolment", "enrolment_id")
    group = await access.get_in_reach(session, principal, Group, enrolment.group_id, "group", lock=True)
    if enrolment.status is EnrolmentStatus.LEFT:
        raise DomainError(ErrorCode.INVALID_STATE, "the participant has already left this group", "enrolment_id")
    await audit.bump_version(session, enrolment, version, "enrolment")
    was_active = enrolment.status is EnrolmentStatus.ACTIVE
    enrolment.status = EnrolmentStatus.LEFT
    enrolment.left_at = utcnow()
    await session.flush()
    await audit.record(
        session, principal, "enrolment.leave", enrolment, {"was": "active" if was_active else "waitlisted"}
    )
    await outbox.emit(session, principal, "participant.left", enrolment)
    promoted = await fill_from_waitlist(session, principal, group) if was_active else []
    return Left(enrolment=enrolment, promoted=promoted)


async def fill_from_waitlist(session: AsyncSession, principal: Principal, group: Group) -> list[Enrolment]:
    """Promote waitlisted enrolments, earliest first, into the group's free places (the group must be locked)."""
    free = group.capacity - await _active_places(session, principal, group)
    if free <= 0:
        return []
    waiting = (
        await session.scalars(
            access.in_reach(principal, Enrolment)
            .where(Enrolment.group_id == group.id, Enrolment.status == EnrolmentStatus.WAITLISTED)
            .order_by(Enrolment.requested_at, Enrolment.id)
            .limit(free)
        )
    ).all()
    now = utcnow()
    for enrolment in waiting:
        enrolment.status = EnrolmentStatus.ACTIVE
        enrolment.activated_at = now
        enrolment.version += 1
    await session.flush()
    for enrolment in waiting:
        await audit.record(session, principal, "enrolment.promote", enrolment)
        await outbox.emit(session, principal, "enrolment.promoted", enrolment)
    return list(waiting)

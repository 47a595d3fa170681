"""Single sessions: one-off meetings added by hand, cancelling and rescheduling (each with a reason), marking a
session held, and recording which facilitators ran it.

Only a session still ``scheduled`` can be cancelled or moved: a held session has a register that belongs to
the time it was held, and a cancelled one is final (add a new session instead). A cancellation's reason is
kept on the session; a move has no column of its own, so its reason and old times are kept in the audit event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, outbox
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import (
    Facilitator,
    FacilitatorAssignment,
    Group,
    GroupSession,
    GroupStatus,
    SessionFacilitator,
    SessionSource,
    SessionStatus,
    utcnow,
)
from .principal import Principal
from .recurrence import MAX_DURATION_MINUTES, MIN_DURATION_MINUTES

SCOPE = "programme:write"
MAX_REASON = 500


def _reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned or len(cleaned) > MAX_REASON:
        raise DomainError(ErrorCode.INVALID, f"a reason of 1 to {MAX_REASON} characters is required", "reason")
    return cleaned


async def _scheduled_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, doing: str
) -> GroupSession:
    row = await access.get_in_reach(session, principal, GroupSession, session_id, "session", "session_id", lock=True)
    if row.status is not SessionStatus.SCHEDULED:
        raise DomainError(ErrorCode.INVALID_STATE, f"a {row.status.value} session cannot be {doing}", "session_id")
    return row


async def cancel_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, version: int, reason: str
) -> GroupSession:
    require_scope(principal, SCOPE)
    cleaned = _reason(reason)
    row = await _scheduled_session(session, principal, session_id, "cancelled")
    await audit.bump_version(session, row, version, "session")
    row.status = SessionStatus.CANCELLED
    row.cancellation_reason = cleaned
    await session.flush()
    await audit.record(session, principal, "session.cancel", row, {"group_id": str(row.group_id)})
    await outbox.emit(session, principal, "session.cancelled", row)
    return row


def _checked_times(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """Both with a UTC offset, and a length the schedules allow; returned in UTC."""
    for field, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise DomainError(ErrorCode.INVALID, "must include a UTC offset (e.g. 2026-03-04T19:00:00+00:00)", field)
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    length = ends_at - starts_at
    if not timedelta(minutes=MIN_DURATION_MINUTES) <= length <= timedelta(minutes=MAX_DURATION_MINUTES):
        raise DomainError(
            ErrorCode.INVALID,
            f"must be {MIN_DURATION_MINUTES} to {MAX_DURATION_MINUTES} minutes after the start",
            "ends_at",
        )
    return starts_at, ends_at


async def _refuse_clash(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, starts_at: datetime, other: uuid.UUID | None
) -> None:
    statement = access.in_reach(principal, GroupSession).where(
        GroupSession.group_id == group_id, GroupSession.starts_at == starts_at
    )
    if other is not None:
        statement = statement.where(GroupSession.id != other)
    if (await session.execute(statement)).first() is not None:
        raise DomainError(ErrorCode.DUPLICATE, "the group already has a session starting then", "starts_at")


async def create_session(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, starts_at: datetime, ends_at: datetime
) -> GroupSession:
    """A one-off meeting of an active group, outside (or instead of) its schedule."""
    require_scope(principal, SCOPE)
    starts_at, ends_at = _checked_times(starts_at, ends_at)
    group = await access.get_in_reach(session, principal, Group, group_id, "group", "group_id", lock=True)
    if group.status is not GroupStatus.ACTIVE:
        raise DomainError(ErrorCode.GROUP_NOT_ACTIVE, f"the group is {group.status.value}", "group_id")
    await _refuse_clash(session, principal, group.id, starts_at, None)
    row = GroupSession(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        group_id=group.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=SessionStatus.SCHEDULED,
        source=SessionSource.MANUAL,
    )
    session.add(row)
    await session.flush()
    await audit.record(session, principal, "session.create", row, {"group_id": str(group.id)})
    return row


async def complete_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, version: int
) -> GroupSession:
    """Mark a session that has started as held (its register may follow, or may have been recorded already)."""
    require_scope(principal, SCOPE)
    row = await access.get_in_reach(session, principal, GroupSession, session_id, "session", "session_id", lock=True)
    if row.status is SessionStatus.CANCELLED:
        raise DomainError(ErrorCode.INVALID_STATE, "a cancelled session cannot be held", "session_id")
    if row.starts_at > utcnow():
        raise DomainError(ErrorCode.NOT_STARTED, "the session has not started yet", "session_id")
    await audit.bump_version(session, row, version, "session")
    row.status = SessionStatus.HELD
    await session.flush()
    await audit.record(session, principal, "session.complete", row, {"group_id": str(row.group_id)})
    return row


async def set_session_facilitators(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, version: int, facilitator_ids: list[uuid.UUID]
) -> GroupSession:
    """Record exactly which facilitators ran a session; each must be assigned to its group."""
    require_scope(principal, SCOPE)
    row = await access.get_in_reach(session, principal, GroupSession, session_id, "session", "session_id", lock=True)
    if row.status is SessionStatus.CANCELLED:
        raise DomainError(ErrorCode.INVALID_STATE, "a cancelled session had no facilitators", "session_id")
    wanted = list(dict.fromkeys(facilitator_ids))
    if len(wanted) > 20:
        raise DomainError(ErrorCode.INVALID, "at most 20 facilitators", "facilitator_ids")
    assigned = set(
        (
            await session.execute(
                access.in_reach(principal, FacilitatorAssignment)
                .with_only_columns(FacilitatorAssignment.facilitator_id)
                .where(FacilitatorAssignment.group_id == row.group_id)
            )
        ).scalars()
    )
    known = set(
        (
            await session.execute(
                access.in_reach(principal, Facilitator)
                .with_only_columns(Facilitator.id)
                .where(Facilitator.id.in_(wanted))
            )
        ).scalars()
    )
    for index, facilitator_id in enumerate(wanted):
        if facilitator_id not in known:
            raise DomainError(ErrorCode.NOT_FOUND, "facilitator not found", f"facilitator_ids.{index}")
        if facilitator_id not in assigned:
            raise DomainError(ErrorCode.INVALID, "the facilitator is not assigned to the session's group",
                              f"facilitator_ids.{index}")  # fmt: skip
    await audit.bump_version(session, row, version, "session")
    current = list(
        (await session.execute(access.in_reach(principal, SessionFacilitator)
                               .where(SessionFacilitator.session_id == row.id))).scalars()
    )  # fmt: skip
    for link in current:
        if link.facilitator_id not in wanted:
            await session.delete(link)
    have = {link.facilitator_id for link in current}
    session.add_all(
        SessionFacilitator(organisation_id=principal.organisation_id, session_id=row.id, facilitator_id=f)
        for f in wanted
        if f not in have
    )
    await session.flush()
    details = {"facilitator_ids": [str(f) for f in wanted]}
    await audit.record(session, principal, "session.set_facilitators", row, details)
    return row


async def reschedule_session(
    session: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    version: int,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
) -> GroupSession:
    require_scope(principal, SCOPE)
    starts_at, ends_at = _checked_times(starts_at, ends_at)
    cleaned = _reason(reason)
    row = await _scheduled_session(session, principal, session_id, "rescheduled")
    await _refuse_clash(session, principal, row.group_id, starts_at, row.id)
    await audit.bump_version(session, row, version, "session")
    details = {
        "group_id": str(row.group_id),
        "reason": cleaned,
        "from": [row.starts_at.isoformat(), row.ends_at.isoformat()],
        "to": [starts_at.isoformat(), ends_at.isoformat()],
    }
    row.starts_at, row.ends_at = starts_at, ends_at
    await session.flush()
    await audit.record(session, principal, "session.reschedule", row, details)
    await outbox.emit(session, principal, "session.rescheduled", row)
    return row

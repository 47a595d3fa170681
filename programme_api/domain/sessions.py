"""Cancelling and rescheduling single sessions, each with a reason.

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
from .models import GroupSession, SessionStatus
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
    cleaned = _reason(reason)
    row = await _scheduled_session(session, principal, session_id, "rescheduled")
    clash = await session.execute(
        access.in_reach(principal, GroupSession).where(
            GroupSession.group_id == row.group_id, GroupSession.starts_at == starts_at, GroupSession.id != row.id
        )
    )
    if clash.first() is not None:
        raise DomainError(ErrorCode.DUPLICATE, "the group already has a session starting then", "starts_at")
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

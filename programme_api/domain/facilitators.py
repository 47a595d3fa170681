"""Facilitators as records of their own: created, corrected, archived, and their training and checks recorded.

Every training and background check is kept in ``facilitator_checks`` (history); the facilitator's own
``training_completed_on`` and ``background_check_expires_on`` hold the latest, so compliance (the
``facilitators(compliance:)`` query and the refusal to assign) reflects a new record in the same unit of
work. A facilitator may be linked to a person's account: that person's tokens then carry the facilitator,
and the access module keeps them to their own groups. Linking changes what an account can see, so it needs
``admin``; the rest needs ``programme:write``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import (
    Facilitator,
    FacilitatorAssignment,
    FacilitatorCheck,
    FacilitatorCheckKind,
    Role,
    User,
    utcnow,
)
from .pagination import Ordering
from .principal import Principal
from .programme import today

SCOPE = "programme:write"
LINK_SCOPE = "admin"
MAX_NAME = 200
MAX_EMAIL = 320
MAX_REFERENCE = 200
CHECK_ORDER = Ordering((FacilitatorCheck.completed_on, FacilitatorCheck.created_at, FacilitatorCheck.id))

# A facilitator's history is read with the facilitator: people of the organisation, not of a region.
access.register_rule(
    FacilitatorCheck, "programme:read", lambda p: sa.and_(FacilitatorCheck.organisation_id == p.organisation_id)
)


@dataclass(frozen=True)
class FacilitatorChange:
    """What a create or update sets; ``None`` leaves a field as it is (``unlink`` removes the account link)."""

    display_name: str | None = None
    email: str | None = None
    user_email: str | None = None
    unlink_user: bool = False


def _name(value: str, field: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise DomainError(ErrorCode.INVALID, f"must be 1-{MAX_NAME} characters", field)
    return value


def _email(value: str, field: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_EMAIL or "@" not in value:
        raise DomainError(ErrorCode.INVALID, "must be an email address", field)
    return value


async def _account(session: AsyncSession, principal: Principal, email: str, facilitator_id: uuid.UUID | None) -> User:
    """The organisation's facilitator account with that email, not already linked to another facilitator.

    Trusted filter: users have no read rule of their own (they are the admin's to manage); an admin links
    only an account of their own organisation, found by its unique email.
    """
    statement = access.trusted(
        sa.select(User).where(User.organisation_id == principal.organisation_id, User.email == email.strip().lower()),
        reason="an account of the admin's own organisation, by email",
    )
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no account of your organisation has this email", "user_email")
    if user.role is not Role.FACILITATOR:
        raise DomainError(ErrorCode.INVALID, "the account must have the facilitator role", "user_email")
    taken = await session.execute(
        access.in_reach(principal, Facilitator).where(Facilitator.user_id == user.id, Facilitator.id != facilitator_id)
    )
    if taken.scalar_one_or_none() is not None:
        raise DomainError(ErrorCode.DUPLICATE, "the account is already linked to another facilitator", "user_email")
    return user


async def create_facilitator(session: AsyncSession, principal: Principal, change: FacilitatorChange) -> Facilitator:
    require_scope(principal, SCOPE)
    facilitator = Facilitator(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        display_name=_name(change.display_name or "", "display_name"),
        email=_email(change.email or "", "email"),
    )
    if change.user_email:
        require_scope(principal, LINK_SCOPE, "user_email")
        facilitator.user_id = (await _account(session, principal, change.user_email, None)).id
    session.add(facilitator)
    await session.flush()
    await audit.record(
        session, principal, "facilitator.create", facilitator, {"linked": facilitator.user_id is not None}
    )
    return facilitator


async def update_facilitator(
    session: AsyncSession, principal: Principal, facilitator_id: uuid.UUID, version: int, change: FacilitatorChange
) -> Facilitator:
    require_scope(principal, SCOPE)
    facilitator = await _current(session, principal, facilitator_id)
    changed: list[str] = []
    if change.display_name is not None:
        facilitator.display_name = _name(change.display_name, "display_name")
        changed.append("display_name")
    if change.email is not None:
        facilitator.email = _email(change.email, "email")
        changed.append("email")
    if change.user_email is not None or change.unlink_user:
        require_scope(principal, LINK_SCOPE, "user_email")
        if change.user_email is not None and change.unlink_user:
            raise DomainError(ErrorCode.INVALID, "give either an account to link or unlink, not both", "user_email")
        linked = (
            None if change.unlink_user else await _account(session, principal, change.user_email or "", facilitator.id)
        )
        facilitator.user_id = linked.id if linked is not None else None
        changed.append("user")
    await audit.bump_version(session, facilitator, version, "facilitator")
    await session.flush()
    await audit.record(session, principal, "facilitator.update", facilitator, {"fields": changed})
    return facilitator


async def archive_facilitator(
    session: AsyncSession, principal: Principal, facilitator_id: uuid.UUID, version: int
) -> Facilitator:
    """Retire a facilitator: their assignments end and they cannot be assigned again; their history stays."""
    require_scope(principal, SCOPE)
    facilitator = await _current(session, principal, facilitator_id)
    await audit.bump_version(session, facilitator, version, "facilitator")
    ended = await session.execute(
        sa.delete(FacilitatorAssignment)
        .where(
            FacilitatorAssignment.organisation_id == principal.organisation_id,
            FacilitatorAssignment.facilitator_id == facilitator.id,
        )
        .returning(FacilitatorAssignment.group_id)
    )
    facilitator.archived_at = utcnow()
    facilitator.user_id = None
    await session.flush()
    groups = sorted(str(group_id) for group_id in ended.scalars())
    await audit.record(session, principal, "facilitator.archive", facilitator, {"ended_assignments": groups})
    return facilitator


@dataclass(frozen=True)
class Recorded:
    """A record added, and its facilitator as it now stands."""

    check: FacilitatorCheck
    facilitator: Facilitator


async def record_check(
    session: AsyncSession,
    principal: Principal,
    facilitator_id: uuid.UUID,
    kind: FacilitatorCheckKind,
    completed_on: date,
    expires_on: date | None,
    reference: str | None,
) -> Recorded:
    """Add a training or background check to the history and bring the facilitator's latest up to date.

    A background check must say when it expires (compliance depends on it); training may. The latest is
    the one completed last, so entering an older record afterwards does not undo a renewal.
    """
    require_scope(principal, SCOPE)
    if completed_on > today():
        raise DomainError(ErrorCode.INVALID, "cannot be in the future", "completed_on")
    if kind is FacilitatorCheckKind.BACKGROUND_CHECK and expires_on is None:
        raise DomainError(ErrorCode.INVALID, "a background check must say when it expires", "expires_on")
    if expires_on is not None and expires_on <= completed_on:
        raise DomainError(ErrorCode.INVALID, "must be after the date it was done", "expires_on")
    reference = (reference or "").strip() or None
    if reference is not None and len(reference) > MAX_REFERENCE:
        raise DomainError(ErrorCode.INVALID, f"must be at most {MAX_REFERENCE} characters", "reference")
    facilitator = await _current(session, principal, facilitator_id)
    latest = await session.execute(
        access.in_reach(principal, FacilitatorCheck)
        .where(FacilitatorCheck.facilitator_id == facilitator.id, FacilitatorCheck.kind == kind)
        .order_by(FacilitatorCheck.completed_on.desc())
        .limit(1)
    )
    previous = latest.scalar_one_or_none()
    check = FacilitatorCheck(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        facilitator_id=facilitator.id,
        kind=kind,
        completed_on=completed_on,
        expires_on=expires_on,
        reference=reference,
        recorded_by=principal.actor_id,
    )
    session.add(check)
    if previous is None or completed_on >= previous.completed_on:
        if kind is FacilitatorCheckKind.TRAINING:
            facilitator.training_completed_on = completed_on
        else:
            facilitator.background_check_expires_on = expires_on
        facilitator.version += 1
    await session.flush()
    details = {"facilitator_id": str(facilitator.id), "kind": kind.value, "expires_on": str(expires_on)}
    await audit.record(session, principal, f"facilitator.{kind.value}_recorded", check, details)
    return Recorded(check=check, facilitator=facilitator)


async def _current(session: AsyncSession, principal: Principal, facilitator_id: uuid.UUID) -> Facilitator:
    """A facilitator in reach who is not archived (archived ones answer like missing ones to writes)."""
    facilitator = await access.get_in_reach(
        session, principal, Facilitator, facilitator_id, "facilitator", "facilitator_id", lock=True
    )
    if facilitator.archived_at is not None:
        raise DomainError(ErrorCode.INVALID_STATE, "the facilitator is archived", "facilitator_id")
    return facilitator


def checks(principal: Principal, facilitator_id: uuid.UUID) -> sa.Select[FacilitatorCheck]:
    """A facilitator's recorded training and checks (history), for reading."""
    return access.readable(principal, FacilitatorCheck).where(FacilitatorCheck.facilitator_id == facilitator_id)

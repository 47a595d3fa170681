"""Registering participants: a reference, minimal contact details, a home region, optionally a first group.

Registration may enrol straight away because a facilitator only reaches participants enrolled in their own
groups: registered alone, the new person would be out of their reach before they could enrol them. The audit
event records the region and whether contact details were given, never the details themselves.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit, enrolments
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import Enrolment, Group, Participant, Region
from .principal import Principal
from .regions import clean_name

SCOPE = "participants:write"
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{6,39}$")


@dataclass(frozen=True)
class NewParticipant:
    reference: str
    region_id: uuid.UUID
    preferred_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    group_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Registered:
    participant: Participant
    enrolment: Enrolment | None


def _optional(value: str | None) -> str | None:
    """Blank optional text counts as not given."""
    if value is None:
        return None
    return value.strip() or None


def _checked(value: str | None, pattern: re.Pattern[str], limit: int, field: str, what: str) -> str | None:
    if value is not None and (len(value) > limit or not pattern.match(value)):
        raise DomainError(ErrorCode.INVALID, f"is not {what}", field)
    return value


async def register_participant(session: AsyncSession, principal: Principal, data: NewParticipant) -> Registered:
    """Register (and optionally enrol) a participant in a region within the writer's reach.

    Trusted filter (the reference check): references are unique across the organisation, so the check spans
    it beyond the writer's regions; only the existence of a participant with that reference leaves here.
    """
    require_scope(principal, SCOPE)
    reference = data.reference.strip()
    if not REFERENCE.match(reference):
        raise DomainError(
            ErrorCode.INVALID, "must be 1 to 32 letters, digits, dots, hyphens or underscores", "reference"
        )
    name = _optional(data.preferred_name)
    preferred_name = clean_name(name, "preferred_name") if name is not None else None
    email = _checked(_optional(data.contact_email), EMAIL, 320, "contact_email", "an email address")
    phone = _checked(_optional(data.contact_phone), PHONE, 40, "contact_phone", "a phone number")
    region = await access.get_in_reach(session, principal, Region, data.region_id, "region", "region_id")
    group = None
    if data.group_id is not None:
        group = await access.get_in_reach(session, principal, Group, data.group_id, "group", "group_id", lock=True)
    # References are unique across the organisation, so the check spans it (revealing only that one is taken).
    taken = sa.select(Participant.id).where(
        Participant.organisation_id == principal.organisation_id, Participant.reference == reference
    )
    trusted = access.trusted(taken, reason="organisation-wide reference uniqueness")
    if (await session.execute(trusted)).first() is not None:
        raise DomainError(ErrorCode.DUPLICATE, f"the reference {reference!r} is already registered", "reference")
    participant = Participant(
        id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        region_id=region.id,
        reference=reference,
        preferred_name=preferred_name,
        contact_email=email,
        contact_phone=phone,
    )
    try:
        # A reference taken in a region this caller cannot see is invisible to the check above under
        # row-level security; the unique constraint still finds it.
        async with session.begin_nested():
            session.add(participant)
    except IntegrityError:
        duplicate = f"the reference {reference!r} is already registered"
        raise DomainError(ErrorCode.DUPLICATE, duplicate, "reference") from None
    details = {"region_id": str(region.id), "has_email": email is not None, "has_phone": phone is not None}
    await audit.record(session, principal, "participant.register", participant, details)
    enrolment = await enrolments.enrol_in(session, principal, participant, group) if group is not None else None
    return Registered(participant=participant, enrolment=enrolment)


@dataclass(frozen=True)
class ParticipantChanges:
    """Contact details to correct: None keeps a value, an empty string clears it."""

    preferred_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    region_id: uuid.UUID | None = None


async def update_participant(
    session: AsyncSession, principal: Principal, participant_id: uuid.UUID, version: int, changes: ParticipantChanges
) -> Participant:
    """Correct a participant's name, contact details or home region (within the writer's reach)."""
    require_scope(principal, SCOPE)
    wanted: dict[str, object] = {}
    if changes.preferred_name is not None:
        name = _optional(changes.preferred_name)
        wanted["preferred_name"] = clean_name(name, "preferred_name") if name is not None else None
    if changes.contact_email is not None:
        wanted["contact_email"] = _checked(_optional(changes.contact_email), EMAIL, 320, "contact_email",
                                           "an email address")  # fmt: skip
    if changes.contact_phone is not None:
        wanted["contact_phone"] = _checked(_optional(changes.contact_phone), PHONE, 40, "contact_phone",
                                           "a phone number")  # fmt: skip
    if changes.region_id is not None:
        region = await access.get_in_reach(session, principal, Region, changes.region_id, "region", "region_id")
        wanted["region_id"] = region.id
    participant = await access.get_in_reach(
        session, principal, Participant, participant_id, "participant", "participant_id", lock=True
    )
    await audit.bump_version(session, participant, version, "participant")
    changed = sorted(name for name, value in wanted.items() if getattr(participant, name) != value)
    for name in changed:
        setattr(participant, name, wanted[name])
    await session.flush()
    await audit.record(session, principal, "participant.update", participant, {"changed": changed})
    return participant

"""Creating an organisation (a tenant): the operator's first step for a new programme team.

An organisation is created by the operator, not by a tenant (no tenant exists yet to act for), so this runs
as system work; its audit event names the operator. Everything else inside the organisation is then set up
by its own admin through the API.
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..request_context import current_request_id
from .errors import DomainError, ErrorCode
from .models import ActorType, AuditEvent, Organisation
from .regions import SLUG, clean_name
from .surveys import ensure_shipped_instruments

MIN_SUPPRESSION_THRESHOLD = 5
DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_SUPPRESSION_THRESHOLD = 10


@dataclass(frozen=True)
class NewOrganisation:
    slug: str
    name: str
    timezone: str = DEFAULT_TIMEZONE
    suppression_threshold: int = DEFAULT_SUPPRESSION_THRESHOLD


def check_timezone(name: str, field: str = "timezone") -> str:
    """An IANA zone name (``Europe/London``): schedules keep their local times in it."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DomainError(ErrorCode.INVALID, f"unknown time zone {name!r} (use an IANA name)", field) from None
    return name


def check_suppression_threshold(value: int, field: str = "suppression_threshold") -> int:
    """Counts below the threshold are hidden from evaluators; below 5 small groups could be re-identified."""
    if value < MIN_SUPPRESSION_THRESHOLD:
        raise DomainError(ErrorCode.INVALID, f"must be at least {MIN_SUPPRESSION_THRESHOLD}", field)
    return value


async def create_organisation(session: AsyncSession, data: NewOrganisation, actor_id: str = "cli") -> Organisation:
    """Create an organisation; a slug already in use is DUPLICATE."""
    if not SLUG.match(data.slug):
        raise DomainError(ErrorCode.INVALID, "must be 1 to 63 lower-case letters, digits or inner hyphens", "slug")
    name = clean_name(data.name)
    timezone = check_timezone(data.timezone)
    threshold = check_suppression_threshold(data.suppression_threshold)
    if await session.scalar(sa.select(Organisation.id).where(Organisation.slug == data.slug)) is not None:
        raise DomainError(ErrorCode.DUPLICATE, f"an organisation {data.slug!r} already exists", "slug")
    organisation = Organisation(
        id=uuid.uuid4(), slug=data.slug, name=name, timezone=timezone, suppression_threshold=threshold
    )
    session.add(organisation)
    await session.flush()
    await ensure_shipped_instruments(session)  # reference data: the new team's surveys need it from day one
    session.add(
        AuditEvent(
            organisation_id=organisation.id,
            actor_type=ActorType.SYSTEM,
            actor_id=actor_id,
            action="organisation.create",
            target_type="Organisation",
            target_id=str(organisation.id),
            request_id=current_request_id(),
            details={"slug": data.slug, "timezone": timezone, "suppression_threshold": threshold},
        )
    )
    await session.flush()
    return organisation

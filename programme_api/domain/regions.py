"""Creating and renaming regions.

Only callers who reach the whole organisation create regions: a region-bound coordinator could not see a
region outside their own, so creating one would hand them a row they cannot read back. Slugs are unique per
organisation (the CLI and client bindings name regions by slug).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from . import access, audit
from .access import require_scope
from .errors import DomainError, ErrorCode
from .models import Region
from .principal import Principal

SCOPE = "programme:write"
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 200


@dataclass(frozen=True)
class NewRegion:
    slug: str
    name: str


@dataclass(frozen=True)
class RegionChanges:
    """Fields to change; None keeps the current value."""

    slug: str | None = None
    name: str | None = None


def clean_name(name: str, field: str = "name", limit: int = MAX_NAME) -> str:
    """A display name trimmed of surrounding spaces; blank or overlong names are INVALID."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > limit:
        raise DomainError(ErrorCode.INVALID, f"must be 1 to {limit} characters", field)
    return cleaned


def _clean_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise DomainError(ErrorCode.INVALID, "must be 1 to 63 lower-case letters, digits or inner hyphens", "slug")
    return slug


async def _refuse_taken_slug(
    session: AsyncSession, principal: Principal, slug: str, other_than: uuid.UUID | None = None
) -> None:
    """Slugs are unique across the organisation, so the check spans it (it reveals only that the slug is taken).

    Trusted filter: the organisation, without the caller's regions, because uniqueness is organisation-wide;
    only the existence of a row leaves this function.
    """
    statement = sa.select(Region.id).where(Region.organisation_id == principal.organisation_id, Region.slug == slug)
    if other_than is not None:
        statement = statement.where(Region.id != other_than)
    trusted = access.trusted(statement, reason="organisation-wide slug uniqueness; reveals only existence")
    if (await session.execute(trusted)).first() is not None:
        raise DomainError(ErrorCode.DUPLICATE, f"the organisation already has a region {slug!r}", "slug")


async def create_region(session: AsyncSession, principal: Principal, data: NewRegion) -> Region:
    require_scope(principal, SCOPE)
    if principal.region_ids is not None:
        raise DomainError(ErrorCode.FORBIDDEN, "only callers who reach the whole organisation may create regions")
    slug, name = _clean_slug(data.slug), clean_name(data.name)
    await _refuse_taken_slug(session, principal, slug)
    region = Region(id=uuid.uuid4(), organisation_id=principal.organisation_id, slug=slug, name=name)
    session.add(region)
    await session.flush()
    await audit.record(session, principal, "region.create", region, {"slug": slug})
    return region


async def update_region(
    session: AsyncSession, principal: Principal, region_id: uuid.UUID, version: int, changes: RegionChanges
) -> Region:
    require_scope(principal, SCOPE)
    region = await access.get_in_reach(session, principal, Region, region_id, "region", "region_id", lock=True)
    slug = _clean_slug(changes.slug) if changes.slug is not None else None
    name = clean_name(changes.name) if changes.name is not None else None
    if slug is not None and slug != region.slug:
        await _refuse_taken_slug(session, principal, slug, other_than=region.id)
    await audit.bump_version(session, region, version, "region")
    changed = []
    if slug is not None and slug != region.slug:
        region.slug = slug
        changed.append("slug")
    if name is not None and name != region.name:
        region.name = name
        changed.append("name")
    await session.flush()
    await audit.record(session, principal, "region.update", region, {"changed": changed})
    return region

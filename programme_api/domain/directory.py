"""Operator-level listings for the CLI (no principal: the operator runs the process)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import NotFound
from .models import Organisation, Region


async def list_organisations(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(sa.select(Organisation).order_by(Organisation.slug))
    return [{"id": str(org.id), "slug": org.slug, "name": org.name, "timezone": org.timezone} for org in rows]


async def organisation_by_slug(session: AsyncSession, slug: str) -> Organisation:
    organisation = await session.scalar(sa.select(Organisation).where(Organisation.slug == slug))
    if organisation is None:
        raise NotFound(f"organisation {slug!r}")
    return organisation


async def list_regions(session: AsyncSession, organisation_slug: str) -> list[dict[str, Any]]:
    organisation = await organisation_by_slug(session, organisation_slug)
    rows = await session.scalars(
        sa.select(Region).where(Region.organisation_id == organisation.id).order_by(Region.slug)
    )
    return [{"id": str(region.id), "slug": region.slug, "name": region.name} for region in rows]

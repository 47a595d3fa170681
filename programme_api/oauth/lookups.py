"""Resolving the slugs an operator types (regions, evaluation projects) within one organisation."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import NotFound
from ..domain.models import EvaluationProject, EvaluationProjectOrganisation, Region


async def evaluation_project_id(session: AsyncSession, slug: str, organisation_id: uuid.UUID) -> uuid.UUID:
    """A project the organisation owns or takes part in; any other project is "not found"."""
    covered = sa.exists().where(
        EvaluationProjectOrganisation.evaluation_project_id == EvaluationProject.id,
        EvaluationProjectOrganisation.organisation_id == organisation_id,
    )
    found = await session.scalar(
        sa.select(EvaluationProject.id).where(
            EvaluationProject.slug == slug,
            sa.or_(EvaluationProject.organisation_id == organisation_id, covered),
        )
    )
    if found is None:
        raise NotFound(f"evaluation project {slug!r}", "evaluation_project")
    return found


async def regions_by_slug(session: AsyncSession, organisation_id: uuid.UUID, slugs: list[str]) -> list[Region]:
    """The organisation's regions named by ``slugs`` (duplicates ignored), in the order given."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        return []
    rows = await session.scalars(
        sa.select(Region).where(Region.organisation_id == organisation_id, Region.slug.in_(wanted))
    )
    found = {region.slug: region for region in rows}
    for slug in wanted:
        if slug not in found:
            raise NotFound(f"region {slug!r}", "region")
    return [found[slug] for slug in wanted]

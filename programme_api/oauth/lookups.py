"""Resolving the slugs an operator types (regions, evaluation projects) within one organisation."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import DomainError, ErrorCode, NotFound
from ..domain.models import EvaluationProject, EvaluationProjectOrganisation, Region


async def evaluation_project_id(session: AsyncSession, slug: str, organisation_id: uuid.UUID) -> uuid.UUID:
    """A project the organisation owns or takes part in.

    An unknown slug is "not found"; a project the organisation does not take part in is refused by name, so
    the operator learns which of the two went wrong (this runs for the operator, not for a tenant).
    """
    project = await session.scalar(sa.select(EvaluationProject).where(EvaluationProject.slug == slug))
    if project is None:
        raise NotFound(f"evaluation project {slug!r}", "evaluation_project")
    participates = await session.scalar(
        sa.select(EvaluationProjectOrganisation.id).where(
            EvaluationProjectOrganisation.evaluation_project_id == project.id,
            EvaluationProjectOrganisation.organisation_id == organisation_id,
        )
    )
    if project.organisation_id != organisation_id and participates is None:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"the organisation does not take part in evaluation project {slug!r}: "
            "only its participating organisations may bind clients or users to it",
            "evaluation_project",
        )
    return project.id


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

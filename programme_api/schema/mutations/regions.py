"""createRegion and updateRegion."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import models, regions
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import Region
from .common import MutationInput, MutationPayload, perform

SCOPE = regions.SCOPE


@strawberry.input(description="A new region of the caller's organisation.")
class CreateRegionInput(MutationInput):
    slug: str = strawberry.field(description="Unique in the organisation: lower-case letters, digits, hyphens.")
    name: str


@strawberry.input(description="Changes to a region; omitted fields keep their value.")
class UpdateRegionInput(MutationInput):
    region_id: strawberry.ID
    version: int = strawberry.field(description="The version you read; a stale one is refused with `CONFLICT`.")
    slug: str | None = None
    name: str | None = None


@strawberry.type(description="The region created or changed, or why not.")
class RegionPayload(MutationPayload):
    region: Region | None = None


def _present(row: models.Region) -> RegionPayload:
    return RegionPayload(region=Region.from_model(row))


async def create_region(info: Info, input: CreateRegionInput) -> RegionPayload:
    new = regions.NewRegion(slug=input.slug, name=input.name)
    return await perform(
        info,
        operation="createRegion",
        scope=SCOPE,
        input=input,
        result_type=models.Region,
        work=lambda session, principal: regions.create_region(session, principal, new),
        payload=RegionPayload,
        present=_present,
    )


async def update_region(info: Info, input: UpdateRegionInput) -> RegionPayload:
    changes = regions.RegionChanges(slug=input.slug, name=input.name)

    async def work(session: AsyncSession, principal: Principal) -> models.Region:
        region_id = expect_global_id(input.region_id, "Region", "input.regionId")
        return await regions.update_region(session, principal, region_id, input.version, changes)

    return await perform(
        info,
        operation="updateRegion",
        scope=SCOPE,
        input=input,
        result_type=models.Region,
        work=work,
        payload=RegionPayload,
        present=_present,
    )

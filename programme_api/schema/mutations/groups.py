"""createGroup and updateGroup."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain import groups, models
from ...domain.principal import Principal
from ..context import Info
from ..relay import expect_global_id
from ..types.programme import Group
from .common import MutationInput, MutationPayload, perform

SCOPE = groups.SCOPE


@strawberry.input(description="A new group in a region the caller reaches.")
class CreateGroupInput(MutationInput):
    region_id: strawberry.ID
    name: str
    topic: models.Topic
    delivery_mode: models.DeliveryMode
    venue: str | None = None
    capacity: int = strawberry.field(default=12, description="Active places (1-500); later enrolments waitlist.")
    status: models.GroupStatus = models.GroupStatus.ACTIVE


@strawberry.input(description="Changes to a group; omitted fields keep their value (`venue: null` clears it).")
class UpdateGroupInput(MutationInput):
    group_id: strawberry.ID
    version: int = strawberry.field(description="The version you read; a stale one is refused with `CONFLICT`.")
    name: str | None = None
    topic: models.Topic | None = None
    delivery_mode: models.DeliveryMode | None = None
    venue: str | None = strawberry.UNSET
    capacity: int | None = strawberry.field(
        default=None, description="Raising it promotes waitlisted participants into the new places."
    )
    status: models.GroupStatus | None = None


@strawberry.type(description="The group created or changed, or why not.")
class GroupPayload(MutationPayload):
    group: Group | None = None


def present_group(row: models.Group) -> GroupPayload:
    return GroupPayload(group=Group.from_model(row))


async def create_group(info: Info, input: CreateGroupInput) -> GroupPayload:
    async def work(session: AsyncSession, principal: Principal) -> models.Group:
        new = groups.NewGroup(
            region_id=expect_global_id(input.region_id, "Region", "input.regionId"),
            name=input.name,
            topic=input.topic,
            delivery_mode=input.delivery_mode,
            venue=input.venue,
            capacity=input.capacity,
            status=input.status,
        )
        return await groups.create_group(session, principal, new)

    return await perform(
        info,
        operation="createGroup",
        scope=SCOPE,
        input=input,
        result_type=models.Group,
        work=work,
        payload=GroupPayload,
        present=present_group,
    )


async def update_group(info: Info, input: UpdateGroupInput) -> GroupPayload:
    changes = groups.GroupChanges(
        name=input.name,
        topic=input.topic,
        delivery_mode=input.delivery_mode,
        venue=groups.KEEP if input.venue is strawberry.UNSET else input.venue,
        capacity=input.capacity,
        status=input.status,
    )

    async def work(session: AsyncSession, principal: Principal) -> models.Group:
        group_id = expect_global_id(input.group_id, "Group", "input.groupId")
        return await groups.update_group(session, principal, group_id, input.version, changes)

    return await perform(
        info,
        operation="updateGroup",
        scope=SCOPE,
        input=input,
        result_type=models.Group,
        work=work,
        payload=GroupPayload,
        present=present_group,
    )
